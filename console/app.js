// The Postbox operations console. Stack: Preact + htm as ES modules served straight from the installed
// packages (about 15 KB compressed together, no build step, nothing to go stale between the source and what
// is served) and uPlot for sparklines. Data comes from the public GraphQL API only, with the user's API key.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { forgetKey, gqlResponse, storedKey, storeKey } from './api.js';
import { ConsumerView } from './consumer.js';
import { DeadLettersView } from './dead-letters.js';
import { EventsView } from './events.js';
import { OverviewView } from './overview.js';
import { html, route } from './ui.js';

/**
 * What the key may do, from the API's `viewer { scopes }`: admin → every view and action, events:read →
 * read-only views without action buttons. No key is asked for when the server has auth off (config.json
 * says which).
 */
async function detectRole() {
  if (!storedKey()) {
    const config = await fetch('./config.json').then((response) => response.json());
    if (config.auth) return { role: 'none', reason: '' };
  }
  const { data, errors = [] } = await gqlResponse('{ viewer { kind scopes } }');
  const codes = errors.map((error) => error.extensions?.code);
  if (codes.includes('UNAUTHENTICATED'))
    return { role: 'none', reason: storedKey() ? errors[0].message : '' };
  const scopes = data?.viewer?.scopes;
  if (!scopes) return { role: 'down', reason: errors[0]?.message ?? 'The API gave no answer' };
  if (scopes.includes('admin')) return { role: 'admin', authOff: data.viewer.kind === 'anonymous' };
  if (scopes.includes('events:read')) return { role: 'read' };
  return {
    role: 'denied',
    reason: 'This key cannot read the event log: the console needs events:read or admin.',
  };
}

function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  return { path: path || '/', params: Object.fromEntries(new URLSearchParams(query ?? '')) };
}

function useHashRoute() {
  const [current, setCurrent] = useState(parseHash);
  useEffect(() => {
    const onChange = () => setCurrent(parseHash());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return current;
}

function KeyForm({ reason, onDone }) {
  const [key, setKey] = useState('');
  return html`<main class="signin">
    <h1>Postbox console</h1>
    <form onSubmit=${(event) => {
      event.preventDefault();
      storeKey(key.trim());
      onDone();
    }}>
      <label for="api-key">API key</label>
      <p class="hint">An <code>admin</code> key sees everything and can act; an <code>events:read</code> key sees the event log, read-only. Kept in this tab only (sessionStorage).</p>
      <input id="api-key" name="api-key" type="password" autocomplete="off" required value=${key}
        onInput=${(event) => setKey(event.currentTarget.value)} />
      ${reason ? html`<p class="error" role="alert">${reason}</p>` : null}
      <button type="submit" class="primary">Open the console</button>
    </form>
  </main>`;
}

const NAV = [
  { path: '/', label: 'Overview' },
  { path: '/dead-letters', label: 'Dead letters', admin: true },
  { path: '/events', label: 'Events' },
];

function App() {
  const [session, setSession] = useState({ role: 'checking' });
  const { path, params } = useHashRoute();
  const check = () => {
    setSession({ role: 'checking' });
    detectRole().then(setSession, (error) => setSession({ role: 'down', reason: error.message }));
  };
  useEffect(check, []);

  if (session.role === 'checking') return html`<p class="loading">Checking access…</p>`;
  if (session.role === 'none') return html`<${KeyForm} reason=${session.reason} onDone=${check} />`;
  if (session.role === 'down' || session.role === 'denied')
    return html`<main class="signin"><h1>Postbox console</h1>
      <p class="error" role="alert">${session.reason}</p>
      <button type="button" onClick=${() => {
        forgetKey();
        check();
      }}>Use another key</button></main>`;

  const admin = session.role === 'admin';
  const section = path.startsWith('/consumer') ? '/' : path;
  let view;
  if (path.startsWith('/consumer/'))
    view = html`<${ConsumerView} name=${decodeURIComponent(path.slice('/consumer/'.length))} admin=${admin} />`;
  else if (path === '/dead-letters') view = html`<${DeadLettersView} params=${params} admin=${admin} />`;
  else if (path === '/events') view = html`<${EventsView} params=${params} />`;
  else view = html`<${OverviewView} admin=${admin} />`;

  return html`<header class="top">
      <a class="brand" href="#/">Postbox console</a>
      <nav aria-label="Views">
        ${NAV.filter((item) => admin || !item.admin).map(
          (item) =>
            html`<a href=${route(item.path)} aria-current=${section === item.path ? 'page' : undefined}>${item.label}</a>`,
        )}
      </nav>
      <span class="role" data-role=${session.role}>${admin ? (session.authOff ? 'auth off' : 'admin') : 'read-only'}</span>
      ${
        session.authOff
          ? null
          : html`<button type="button" class="link" onClick=${() => {
              forgetKey();
              check();
            }}>Sign out</button>`
      }
    </header>
    <main id="main">${view}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
