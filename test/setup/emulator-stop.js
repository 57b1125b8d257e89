export default async function () {
  await globalThis.__kumoEmulator?.stop();
}
