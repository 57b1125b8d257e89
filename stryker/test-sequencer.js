// Jest test sequencer for Stryker's runs only (stryker.config.mjs). A mutant run names the
// tests that reached the mutant (testNamePattern), but jest would still load every related
// test file, and each imports the whole app: seconds per file. So the dry run records which
// file holds which test, and a mutant run loads only the files that hold its tests.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export default class StrykerTestSequencer {
  #pattern;
  #mapFile;

  constructor({ globalConfig }) {
    this.#pattern = globalConfig.testNamePattern;
    this.#mapFile = join(globalConfig.rootDir, ".stryker-test-files.json");
  }

  #read() {
    return existsSync(this.#mapFile) ? JSON.parse(readFileSync(this.#mapFile, "utf8")) : {};
  }

  sort(tests) {
    const sorted = [...tests].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    if (!this.#pattern) return sorted;
    const pattern = new RegExp(this.#pattern, "i"); // as jest matches testNamePattern
    const files = new Set(Object.entries(this.#read()).filter(([name]) => pattern.test(name)).map(([, file]) => file));
    const kept = sorted.filter((test) => files.has(test.path));
    return kept.length > 0 ? kept : sorted; // a test not recorded: load them all
  }

  allFailedTests(tests) {
    return this.sort(tests);
  }

  shard(tests) {
    return tests;
  }

  cacheResults(_tests, results) {
    if (this.#pattern) return; // a mutant run: only some tests ran
    const byName = this.#read();
    for (const file of results.testResults) for (const test of file.testResults) byName[test.fullName] = file.testFilePath;
    writeFileSync(this.#mapFile, JSON.stringify(byName));
  }
}
