// @vitest-environment jsdom
import './dom-shim';

import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import { afterEach, describe, expect, it } from 'vitest';

import { SessionStore } from '../src/model';
import { SessionStatusItem } from '../src/statusbar';
import { makeSession } from './fixtures';

/** Just the parts of NotebookPanel / INotebookTracker the item reads. */
class FakeNotebook extends Widget {
  constructor(sessionId: string | null, kernelId: string | null) {
    super();
    this.setIds(sessionId, kernelId);
  }
  setIds(sessionId: string | null, kernelId: string | null): void {
    this.sessionContext.session = sessionId
      ? { id: sessionId, kernel: kernelId ? { id: kernelId } : null }
      : null;
  }
  sessionContext = {
    isDisposed: false,
    session: null as any,
    sessionChanged: new Signal<any, any>(this),
    kernelChanged: new Signal<any, any>(this)
  };
}

class FakeTracker {
  currentWidget: FakeNotebook | null = null;
  currentChanged = new Signal<any, any>(this);
  setCurrent(nb: FakeNotebook | null): void {
    this.currentWidget = nb;
    this.currentChanged.emit(nb);
  }
}

class FakeShell {
  currentWidget: Widget | null = null;
  currentChanged = new Signal<any, any>(this);
  setCurrent(w: Widget | null): void {
    this.currentWidget = w;
    this.currentChanged.emit({ oldValue: null, newValue: w });
  }
}

let item: SessionStatusItem | null = null;

afterEach(() => item?.dispose());

function setup() {
  const store = new SessionStore();
  const tracker = new FakeTracker();
  const shell = new FakeShell();
  let clicks = 0;
  item = new SessionStatusItem({
    store,
    tracker: tracker as any,
    labShell: shell as any,
    onClick: () => clicks++
  });
  let toggles = 0;
  item.activeStateChanged.connect(() => toggles++);
  return {
    store,
    tracker,
    shell,
    item,
    clicks: () => clicks,
    toggles: () => toggles
  };
}

describe('SessionStatusItem', () => {
  it('shows queue, clock and memory of the focused notebook', () => {
    const { store, tracker, shell, item, toggles } = setup();
    expect(item.isActiveItem).toBe(false);
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({
          session_id: 'nb',
          kernel_id: 'k',
          status: 'busy',
          busy_seconds: 12,
          resource_usage: {
            cpu_percent: 1,
            memory_bytes: 64 * 1024 * 1024,
            thread_count: 1,
            sampling_period_ms: 1000,
            timestamp: 0
          }
        })
      ]
    });
    const nb = new FakeNotebook('nb', 'k');
    tracker.setCurrent(nb);
    // Tracked but not focused (e.g. the file browser has focus): hidden.
    expect(item.isActiveItem).toBe(false);
    shell.setCurrent(nb);
    expect(item.isActiveItem).toBe(true);
    expect(toggles()).toBe(1);
    expect(item.node.dataset.sessionId).toBe('nb');
    expect(
      item.node.querySelector('.jp-SessionExt-statusQueue')?.textContent
    ).toBe('0 queued');
    expect(
      item.node.querySelector('.jp-SessionExt-statusTime')?.textContent
    ).toBe('busy 12s');
    expect(
      item.node.querySelector('.jp-SessionExt-statusMemory')?.textContent
    ).toBe('64.0 MiB');

    store.apply({
      event: 'queue',
      session_id: 'nb',
      length: 3,
      active: null,
      pending: []
    });
    expect(
      item.node.querySelector('.jp-SessionExt-statusQueue')?.textContent
    ).toBe('3 queued');

    shell.setCurrent(new Widget());
    expect(item.isActiveItem).toBe(false);
    expect(toggles()).toBe(2);
  });

  it('falls back to the kernel id and follows kernel changes', () => {
    const { store, tracker, shell, item } = setup();
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({ session_id: 'a', kernel_id: 'k1' }),
        makeSession({ session_id: 'b', kernel_id: 'k2' })
      ]
    });
    const nb = new FakeNotebook('not-mirrored-yet', 'k1');
    tracker.setCurrent(nb);
    shell.setCurrent(nb);
    expect(item.node.dataset.sessionId).toBe('a');
    nb.setIds('not-mirrored-yet', 'k2');
    nb.sessionContext.kernelChanged.emit(null);
    expect(item.node.dataset.sessionId).toBe('b');
    nb.setIds(null, null);
    nb.sessionContext.sessionChanged.emit(null);
    expect(item.isActiveItem).toBe(false);
  });

  it('disappears when the session is deleted and opens the panel on click', () => {
    const { store, tracker, shell, item, clicks } = setup();
    store.apply({
      event: 'snapshot',
      sessions: [makeSession({ session_id: 'nb' })]
    });
    const nb = new FakeNotebook('nb', 'k1');
    tracker.setCurrent(nb);
    shell.setCurrent(nb);
    expect(item.isActiveItem).toBe(true);
    item.node.click();
    expect(clicks()).toBe(1);
    store.apply({ event: 'session_deleted', session_id: 'nb' });
    expect(item.isActiveItem).toBe(false);
    expect(item.node.dataset.sessionId).toBeUndefined();
  });
});
