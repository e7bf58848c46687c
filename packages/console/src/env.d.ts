// Vite handles CSS imports (bundled into the build's stylesheet).
declare module '*.css';
