import { startFirestoreEmulator } from "./firestore-emulator.js";

// Jest workers inherit this environment, so every store test talks to one emulator.
export default async function () {
  if (process.env.FIRESTORE_EMULATOR_HOST) return;
  const emulator = await startFirestoreEmulator();
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  globalThis.__kumoEmulator = emulator;
}
