import { defineConfig } from 'vite';

// Served by the API under /console (services/api/src/console.ts); every asset is a file of its own,
// so the API's Content-Security-Policy (script-src 'self') holds without exceptions.
export default defineConfig({
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, assetsInlineLimit: 0, modulePreload: { polyfill: false }, target: 'es2022' },
});
