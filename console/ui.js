// Shared pieces: the html tag, formatting, a confirmation dialog, sparklines.
import htm from 'htm';
import { h } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** JSX-like templates without a build step. */
export const html = htm.bind(h);

/** 1234567 → "1,234,567". */
export const num = (n) => (n ?? 0).toLocaleString('en');

/** Milliseconds as "350 ms", "12 s", "4 min", "3 h". */
export function duration(ms) {
  if (!ms) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** An ISO instant as local "YYYY-MM-DD HH:MM:SS". */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Pretty JSON for payloads and metadata. */
export const json = (value) => JSON.stringify(value, null, 2);

/** A hash route link: `#/events?streamId=…`. */
export function route(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== ''));
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}

/**
 * A modal confirmation (native <dialog>: focus is trapped, Escape cancels). `message` says exactly what the
 * action will do; nothing happens until the confirm button is pressed.
 */
export function Confirm({ title, children, confirmLabel, onConfirm, onCancel, busy }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.open && dialog.close();
  }, []);
  return html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-title" onCancel=${(event) => {
    event.preventDefault();
    onCancel();
  }}>
    <h2 id="confirm-title">${title}</h2>
    <div class="confirm-body">${children}</div>
    <div class="actions">
      <button type="button" class="primary" disabled=${busy} onClick=${onConfirm}>${confirmLabel}</button>
      <button type="button" onClick=${onCancel} disabled=${busy}>Cancel</button>
    </div>
  </dialog>`;
}

/** A message for an error from the API. */
export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

/**
 * A small line chart of the values seen since the page opened (uPlot: a kept, 50 KB canvas chart library
 * that redraws a few hundred points in well under a millisecond). `label` is read by screen readers.
 */
export function Sparkline({ times, values, label, color = '#1f5fa8', width = 160, height = 36 }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = new uPlot(
      {
        width,
        height,
        pxAlign: false,
        cursor: { show: false },
        legend: { show: false },
        select: { show: false },
        scales: { x: { time: false }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max)] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: color, width: 1.5, fill: `${color}22`, points: { show: false } }],
      },
      [[], []],
      box.current,
    );
    return () => chart.current?.destroy();
  }, [width, height, color]);
  useEffect(() => {
    chart.current?.setData([times, values]);
  }, [times, values]);
  const last = values.at(-1);
  return html`<div class="spark" role="img" aria-label=${`${label}: ${last === undefined ? 'no data yet' : num(Math.round(last * 10) / 10)}`} ref=${box}></div>`;
}
