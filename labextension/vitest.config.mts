import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    server: {
      deps: {
        // Published as ESM with extension-less imports, which Node's own
        // loader rejects; let Vite resolve and transform them instead.
        inline: [/@jupyter\/web-components/, /@microsoft\/fast-/]
      }
    }
  }
});
