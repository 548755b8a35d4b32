/**
 * What jsdom lacks and JupyterLab's packages touch at import time (the same
 * gaps @jupyterlab/testing's jest shim fills). Import it before them.
 */
const g = globalThis as any;

if (typeof g.DragEvent === 'undefined') {
  g.DragEvent = class DragEvent extends Event {
    dataTransfer: DataTransfer | null;
    constructor(
      type: string,
      init?: EventInit & { dataTransfer?: DataTransfer }
    ) {
      super(type, init);
      this.dataTransfer = init?.dataTransfer ?? null;
    }
  };
}

if (typeof window !== 'undefined' && typeof window.matchMedia !== 'function') {
  // A media query list that never matches (no forced colours, no dark mode).
  window.matchMedia = (query: string) =>
    ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => undefined,
      removeListener: () => undefined,
      addEventListener: () => undefined,
      removeEventListener: () => undefined,
      dispatchEvent: () => false
    }) as MediaQueryList;
}

if (typeof g.requestIdleCallback !== 'function') {
  // ReactWidget resolves `renderPromise` on idle; a macrotask is close enough.
  g.requestIdleCallback = (cb: () => void) => setTimeout(cb, 1);
  g.cancelIdleCallback = (id: ReturnType<typeof setTimeout>) =>
    clearTimeout(id);
}
