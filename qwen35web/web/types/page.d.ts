// Types the type check needs beside the site's own files (never served: the site has no .ts files).

// The page's elements by id: ui.js, chat.js and example.js look them up with one helper, and an id
// names an input, a button, a meter, a progress bar, the form or a plain element; the helper's result
// offers the form controls' members they use (value and max differ in type between inputs and meters).
interface PageControl extends HTMLElement {
  value: any;
  max: any;
  disabled: boolean;
  checked: boolean;
  placeholder: string;
  requestSubmit(): void;
}

interface Window {
  // The page's automation API (app.js, docs/page-api.md): what the tests and benchmarks drive.
  app: Record<string, any>;
}
