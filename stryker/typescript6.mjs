// The project compiles with TypeScript 7, whose package has no compiler API; Stryker
// (core's tsconfig preprocessor and @stryker-mutator/typescript-checker) needs one, so
// their `import "typescript"` gets TypeScript 6 (devDependency "typescript6", an alias of
// typescript@6). Imported by stryker.config.mjs (main process) and loaded with --import
// into the type-checker processes (checkerNodeArgs); nothing else is redirected.
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === "typescript" && context.parentURL?.includes("/node_modules/@stryker-mutator/")) {
      return nextResolve("typescript6", context);
    }
    return nextResolve(specifier, context);
  },
});
