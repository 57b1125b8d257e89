// `npm run mutate [-- <stryker run options>]`: mutation testing with Stryker (stryker.config.mjs).
// One Firestore emulator serves every jest run of the whole Stryker run (jest's globalSetup
// reuses FIRESTORE_EMULATOR_HOST instead of starting its own each time).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startFirestoreEmulator } from "../test/setup/firestore-emulator.js";

process.env.METADATA_SERVER_DETECTION ??= "none";
const emulator = await startFirestoreEmulator();
process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
console.log(`Firestore emulator on ${emulator.host}`);

const stryker = fileURLToPath(new URL("../node_modules/@stryker-mutator/core/bin/stryker.js", import.meta.url));
// A process group of its own: a signal ends Stryker and its checker and test runner processes.
const child = spawn(process.execPath, [stryker, "run", ...process.argv.slice(2)], { stdio: "inherit", detached: true });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.kill(-child.pid, signal));
const code = await new Promise((resolve) => child.on("exit", (c, s) => resolve(c ?? (s ? 1 : 0))));
await emulator.stop();
process.exit(code);
