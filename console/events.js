// The event log: filter by type, stream, correlation id and time; a stream's whole history; a live tail that
// polls `events(after: cursor)` — the gap-safe read order, so the tail never skips an event that commits late.
import { useEffect, useRef, useState } from 'preact/hooks';
import { gql, POLL_MS, usePoll } from './api.js';
import { ErrorNote, html, json, route, when } from './ui.js';

const PAGE = 50;
/** Rows the live tail keeps on screen. */
const TAIL_ROWS = 200;
const EVENT_FIELDS =
  'id type position streamType streamId streamVersion occurredAt correlationId payload metadata';
const EVENTS = `query Events($first: Int, $after: String, $filter: EventFilter) {
  events(first: $first, after: $after, filter: $filter) {
    edges { cursor node { ${EVENT_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const FIELDS = ['types', 'streamType', 'streamId', 'correlationId', 'from', 'to'];

/** The API's EventFilter from the URL's parameters (datetime-local values are local times). */
function toFilter(params) {
  const filter = {};
  if (params.types)
    filter.types = params.types
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
  for (const key of ['streamType', 'streamId', 'correlationId']) if (params[key]) filter[key] = params[key];
  for (const key of ['from', 'to']) if (params[key]) filter[key] = new Date(params[key]).toISOString();
  return filter;
}

export function EventsView({ params }) {
  const filter = toFilter(params);
  const filterKey = JSON.stringify(filter);
  const [pages, setPages] = useState([null]);
  const [tail, setTail] = useState(false);
  useEffect(() => {
    setPages([null]);
    setTail(false);
  }, [filterKey]);
  const list = usePoll(
    () => gql(EVENTS, { first: PAGE, after: pages.at(-1), filter }).then((d) => d.events),
    0,
    [filterKey, pages.length, tail],
  );
  const stream = params.streamType && params.streamId ? `${params.streamType}/${params.streamId}` : undefined;
  return html`<h1>Events${stream ? html` of stream <code>${stream}</code>` : null}</h1>
    <form class="filters" onSubmit=${(event) => {
      event.preventDefault();
      const form = new FormData(event.currentTarget);
      location.hash = route(
        '/events',
        Object.fromEntries(FIELDS.map((f) => [f, String(form.get(f) ?? '').trim()])),
      );
    }}>
      <label>Types <input name="types" value=${params.types ?? ''} placeholder="OrderPlaced, OrderPaid" /></label>
      <label>Stream type <input name="streamType" value=${params.streamType ?? ''} /></label>
      <label>Stream id <input name="streamId" value=${params.streamId ?? ''} /></label>
      <label>Correlation id <input name="correlationId" value=${params.correlationId ?? ''} /></label>
      <label>From <input type="datetime-local" step="1" name="from" value=${params.from ?? ''} /></label>
      <label>To <input type="datetime-local" step="1" name="to" value=${params.to ?? ''} /></label>
      <button type="submit">Filter</button>
      <a href="#/events">Clear</a>
    </form>
    <div class="actions">
      <label class="check"><input type="checkbox" checked=${tail} onChange=${(e) => setTail(e.currentTarget.checked)} /> Live tail (new events as they commit, every ${POLL_MS / 1000} s)</label>
    </div>
    ${params.correlationId && !tail ? html`<${CausationTree} correlationId=${params.correlationId} />` : null}
    ${
      tail
        ? html`<${LiveTail} filter=${filter} />`
        : html`
      <${ErrorNote} error=${list.error} />
      ${list.data && list.data.edges.length === 0 ? html`<p>No events match.</p>` : null}
      <${EventTable} events=${list.data?.edges.map((e) => e.node) ?? []} />
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${pages.length === 1} onClick=${() => setPages(pages.slice(0, -1))}>Previous page</button>
        <span>Page ${pages.length} (oldest first)</span>
        <button type="button" disabled=${!list.data?.pageInfo.hasNextPage}
          onClick=${() => setPages([...pages, list.data.pageInfo.endCursor])}>Next page</button>
      </nav>`
    }`;
}

/** Polls the log after the newest cursor it has; starts at the log's head (what happens from now on). */
function LiveTail({ filter }) {
  const state = useRef({ cursor: undefined, rows: [] });
  const poll = usePoll(
    async () => {
      const s = state.current;
      if (s.cursor === undefined) s.cursor = (await gql('{ logHead }')).logHead;
      for (let page = 0; page < 5; page++) {
        const { events } = await gql(EVENTS, { first: 500, after: s.cursor, filter });
        s.rows = [...events.edges.map((e) => e.node).reverse(), ...s.rows].slice(0, TAIL_ROWS);
        s.cursor = events.pageInfo.endCursor ?? s.cursor;
        if (!events.pageInfo.hasNextPage) break;
      }
      return { rows: s.rows, at: new Date() };
    },
    POLL_MS,
    [],
  );
  return html`<p class="meta">Newest first; the last ${TAIL_ROWS} kept.${poll.data ? ` Checked at ${poll.data.at.toLocaleTimeString()}.` : ''}</p>
    <${ErrorNote} error=${poll.error} />
    ${poll.data && poll.data.rows.length === 0 ? html`<p>Waiting for new events…</p>` : null}
    <${EventTable} events=${poll.data?.rows ?? []} testid="tail" />`;
}

function EventTable({ events, testid = 'events' }) {
  const [open, setOpen] = useState(new Set());
  const toggle = (id) => {
    const next = new Set(open);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setOpen(next);
  };
  return html`<div class="scroll"><table class="events" data-testid=${testid}>
    <thead><tr><th scope="col" class="num">Position</th><th scope="col">Occurred</th><th scope="col">Type</th>
      <th scope="col">Stream</th><th scope="col">Correlation</th><th scope="col"><span class="sr-only">Details</span></th></tr></thead>
    <tbody>${events.map(
      (e) => html`<tr data-event=${e.id}>
          <td class="num">${e.position}</td><td>${when(e.occurredAt)}</td>
          <td><a href=${route('/events', { types: e.type })}>${e.type}</a></td>
          <td><a href=${route('/events', { streamType: e.streamType, streamId: e.streamId })}>${e.streamType}/${e.streamId}</a> #${e.streamVersion}</td>
          <td>${e.correlationId ? html`<a href=${route('/events', { correlationId: e.correlationId })}>${e.correlationId.slice(0, 13)}…</a>` : '—'}</td>
          <td><button type="button" class="small" aria-expanded=${open.has(e.id)} onClick=${() => toggle(e.id)}>${open.has(e.id) ? 'Hide' : 'Payload'}</button></td>
        </tr>
        ${
          open.has(e.id)
            ? html`<tr class="detail"><td colspan="6"><div class="two">
                <div><h3>Payload</h3><pre>${json(e.payload)}</pre></div>
                <div><h3>Metadata</h3><pre>${json(e.metadata)}</pre></div></div></td></tr>`
            : null
        }`,
    )}</tbody>
  </table></div>`;
}

/**
 * What one request caused, drawn as a tree: every event of the correlation id, each under the event whose
 * handler appended it (`metadata.causationId`); events the request appended itself are the roots.
 */
function CausationTree({ correlationId }) {
  const poll = usePoll(
    () =>
      gql(EVENTS, { first: 500, filter: { correlationId } }).then((d) => d.events.edges.map((e) => e.node)),
    0,
    [correlationId],
  );
  const events = poll.data ?? [];
  const ids = new Set(events.map((e) => e.id));
  const children = new Map();
  for (const event of events) {
    const parent = ids.has(event.metadata?.causationId) ? event.metadata.causationId : null;
    children.set(parent, [...(children.get(parent) ?? []), event]);
  }
  const branch = (parent) => {
    const nodes = children.get(parent) ?? [];
    if (nodes.length === 0) return null;
    return html`<ul>${nodes.map(
      (
        e,
      ) => html`<li><a href=${route('/events', { streamType: e.streamType, streamId: e.streamId })}>${e.type}</a>
        <span class="meta"> ${e.streamType}/${e.streamId} #${e.streamVersion} · position ${e.position}</span>${branch(e.id)}</li>`,
    )}</ul>`;
  };
  return html`<section class="panel tree" aria-labelledby="tree-h" data-testid="causation-tree">
    <h2 id="tree-h">Causation tree of this request</h2>
    <${ErrorNote} error=${poll.error} />
    ${poll.data && events.length === 0 ? html`<p>No events carry this correlation id.</p>` : branch(null)}
  </section>`;
}
