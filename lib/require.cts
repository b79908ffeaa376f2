// The CommonJS entry (package.json exports, "require" condition): require('vargpt') loads the ES
// module build through Node's require(esm), which Node 20.19+ and 22.12+ have on by default (the
// module graph has no top-level await; test/api/commonjs.test.ts checks both). Older Node cannot
// require an ES module: it gets an error that says so and what to use instead.
type Api = typeof import('./index.js', { with: { 'resolution-mode': 'import' } });

function load(): Api {
  try {
    return require('./index.js') as Api;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_REQUIRE_ESM') {
      throw new Error(
        `vargpt is an ES module; require('vargpt') needs Node >= 20.19 or >= 22.12 (this is ${process.version}). ` +
          "Use import('vargpt') or `import ... from 'vargpt'`, or upgrade Node.",
        { cause: error },
      );
    }
    throw error;
  }
}

export = load();
