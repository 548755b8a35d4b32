import { LabIcon } from '@jupyterlab/ui-components';

/**
 * Sidebar icon: a shrinking stack of bars (the execution queue) next to a
 * "run" triangle. `jp-icon3` makes it follow the light/dark theme.
 */
const sessionsSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="3" width="13" height="4" rx="1"/>
    <rect x="2" y="10" width="10" height="4" rx="1"/>
    <rect x="2" y="17" width="7" height="4" rx="1"/>
    <path d="M15 11.5 L22 16 L15 20.5 Z"/>
  </g>
</svg>`;

export const sessionsIcon = new LabIcon({
  name: 'session-ext:sessions',
  svgstr: sessionsSvg
});
