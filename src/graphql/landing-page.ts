/** One link on the landing page. */
export interface LandingLink {
  readonly href: string;
  readonly title: string;
  readonly description: string;
}

/** What the landing page at `/` shows. */
export interface LandingPageOptions {
  readonly version: string;
  /** Links to what this server serves, in order (GraphiQL only when it is enabled, and so on). */
  readonly links: readonly LandingLink[];
}

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/**
 * The HTML of `/`: what the service is, links to what it serves, and its version. Self-contained (no
 * scripts, no external styles), so it works offline and under a strict CSP.
 */
export function renderLandingPage(options: LandingPageOptions): string {
  const items = options.links
    .map(
      (link) =>
        `<li><a href="${escapeHtml(link.href)}">${escapeHtml(link.title)}</a> — ${escapeHtml(link.description)}</li>`,
    )
    .join('\n      ');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Postbox</title>
    <style>
      body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
      code { background: #f3f3f3; padding: 0 .25em; }
      footer { margin-top: 2rem; color: #666; font-size: .9em; }
    </style>
  </head>
  <body>
    <h1>Postbox</h1>
    <p>A transactional outbox built around one PostgreSQL database: producers append events in the same
      transaction as their business rows, a relay hands committed events to consumers in per-stream order, and
      the event log is plain SQL (<code>outbox.events</code>). This server runs the example shop's GraphQL API.</p>
    <ul>
      ${items}
    </ul>
    <footer>Postbox ${escapeHtml(options.version)}</footer>
  </body>
</html>
`;
}
