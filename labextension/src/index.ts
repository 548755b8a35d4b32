/**
 * session_ext's JupyterLab plugin: one store fed by the /supervisor/events
 * websocket, shown by the "Kernel Sessions" sidebar and a status bar item;
 * and notebooks get back the outputs their cells produced while closed.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { SupervisorClient } from './api';
import { EventStream } from './events';
import { SessionStore } from './model';
import { restoreNotebookOutputs } from './notebookRestore';
import { SessionsPanel } from './panel';
import { SessionStatusItem } from './statusbar';

const PANEL_ID = 'session-ext:panel';
const SHOW_COMMAND = 'session-ext:show-panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'session-ext-labextension:plugin',
  description: 'Kernel Sessions panel and status bar item for session_ext.',
  autoStart: true,
  optional: [
    ILabShell,
    ILayoutRestorer,
    INotebookTracker,
    IStatusBar,
    ICommandPalette
  ],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    tracker: INotebookTracker | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const store = new SessionStore();
    const client = new SupervisorClient(app.serviceManager.serverSettings);
    const stream = new EventStream({
      url: client.eventsUrl(),
      onEvent: frame => store.apply(frame),
      createSocket: url => new client.settings.WebSocket(url)
    });

    const panel = new SessionsPanel({
      store,
      stream,
      client,
      commands: app.commands,
      mcp: true
    });
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(SHOW_COMMAND, {
      label: 'Show Kernel Sessions',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: SHOW_COMMAND, category: 'Kernel' });

    if (tracker) {
      restoreNotebookOutputs(tracker, client);
    }

    if (tracker && statusBar) {
      const item = new SessionStatusItem({
        store,
        tracker,
        labShell,
        onClick: () => void app.commands.execute(SHOW_COMMAND)
      });
      statusBar.registerStatusItem('session-ext:status', {
        item,
        align: 'left',
        rank: 4,
        isActive: () => item.isActiveItem,
        activeStateChanged: item.activeStateChanged
      });
    }

    stream.start();
  }
};

export default plugin;
