// Mutation testing: `npm run mutate` (stryker/mutate.mjs starts one Firestore emulator for the run).
// Not part of CI. Reports land in reports/mutation/ (html and json).
// One folder at a time: `npm run mutate -- --mutate 'app/store/**/*.ts'`.
import { fileURLToPath } from "node:url";
import "./stryker/typescript6.mjs";

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: ["app/launch/**/*.ts", "app/store/**/*.ts", "app/reconcile/**/*.ts", "app/handlers/**/*.ts", "app/settings/**/*.ts"],
  testRunner: "jest",
  // The tests are ES modules (jest's experimental VM modules, as in `npm test`).
  testRunnerNodeArgs: ["--experimental-vm-modules"],
  jest: {
    projectType: "custom",
    configFile: "jest.config.js",
    // The test sequencer below picks the test files: no need for jest to resolve related ones.
    enableFindRelatedTests: false,
    config: {
      // test/entry starts the built dist/ as processes, where no mutant is (it tests app/entry, out of
      // scope); test/fakes tests the stand-ins.
      testPathIgnorePatterns: ["/node_modules/", "/test/entry/", "/test/fakes/"],
      // KUMO_MUTATE_TESTS=test/store[,test/…]: only those folders' tests try the mutants. For code that
      // nearly every test reaches (app/store): each mutant would otherwise run most of the suite (hours).
      ...(process.env.KUMO_MUTATE_TESTS ? { roots: process.env.KUMO_MUTATE_TESTS.split(",").map((dir) => `<rootDir>/${dir}`) } : {}),
      // A mutant run loads only the test files holding the tests that reached the mutant.
      testSequencer: "<rootDir>/stryker/test-sequencer.js",
    },
  },
  // Mutants that do not compile are dropped before any test runs. The checker compiles app/ only
  // (half the work of the whole project): the tests run through swc, which does not type-check.
  checkers: ["typescript"],
  tsconfigFile: "stryker/tsconfig.checker.json",
  checkerNodeArgs: ["--import", fileURLToPath(new URL("./stryker/typescript6.mjs", import.meta.url))],
  // Each mutant runs only the tests that reached it in the first (dry) run.
  coverageAnalysis: "perTest",
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 20_000,
  timeoutFactor: 2,
  ignorePatterns: ["dist", "coverage", "bench/results", "reports"],
  reporters: ["clear-text", "progress", "html", "json"],
};
