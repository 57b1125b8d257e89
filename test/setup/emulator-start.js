import { startFirestoreEmulator } from "./firestore-emulator.js";

// Jest workers inherit this environment, so every store test talks to one emulator.
export default async function () {
  // Google clients probe the GCE metadata server for credentials and the universe
  // domain; there is none here, and tests make no network call but to the emulator.
  process.env.METADATA_SERVER_DETECTION ??= "none";
  if (process.env.FIRESTORE_EMULATOR_HOST) return;
  const emulator = await startFirestoreEmulator();
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  globalThis.__kumoEmulator = emulator;
}
