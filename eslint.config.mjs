// ESLint for the site's JavaScript (`make lint-js`): the recommended rules, each folder with the
// globals of where it runs (the page's window, the module's worker, the service worker).
import js from "@eslint/js";
import globals from "globals";

const STATIC = "qwen35web/web/static";

export default [
  { ignores: ["node_modules/**", "build/**", "site/**", "tests/transformers_js/**", "qwen35web/web/_vendor/**", "bench/**"] },
  js.configs.recommended,
  {
    files: [`${STATIC}/**/*.{js,mjs}`],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { ...globals.browser } },
    rules: {
      "no-unused-vars": ["error", { args: "after-used", argsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true }],
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
    },
  },
  {
    files: [`${STATIC}/worker/**/*.js`],
    languageOptions: { globals: { ...globals.worker } },
  },
  {
    files: [`${STATIC}/sw.js`],
    languageOptions: { sourceType: "script", globals: { ...globals.serviceworker } },
    rules: { "no-implicit-globals": "off" }, // a classic script: its functions live in its own worker scope
  },
];
