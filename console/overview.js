// Overview, live by short polling every 2 s: the numbers are aggregates over SQL views (consumer_lag), so a
// poll costs one bounded query and shows the same thing a subscription would, without holding a connection
// per open tab; rates come from differences between polls.
import { useRef } from 'preact/hooks';
import { gql, POLL_MS, usePoll } from './api.js';
import { OptionalPanels } from './optional-panels.js';
import { duration, ErrorNote, html, num, route, Sparkline } from './ui.js';

/** Points kept per sparkline (10 minutes at 2 s). */
const HISTORY = 300;

const CONSUMERS = `{ consumers { name status partitions lag oldestPendingMs retrying blocked deadLetters handled } }`;
const LOG_HEAD = '{ logHead }';
const TAIL = `query Tail($after: String) {
  events(after: $after, first: 500) { edges { node { type } } pageInfo { endCursor hasNextPage } }
}`;

const push = (array, value) => {
  array.push(value);
  if (array.length > HISTORY) array.shift();
};

/** Reads the log after the last cursor: how many events of each type were appended since the last poll. */
async function readAppended(state) {
  if (state.cursor === undefined) {
    state.cursor = (await gql(LOG_HEAD)).logHead;
    return {};
  }
  const counts = {};
  for (let page = 0; page < 10; page++) {
    const { events } = await gql(TAIL, { after: state.cursor });
    for (const { node } of events.edges) counts[node.type] = (counts[node.type] ?? 0) + 1;
    state.cursor = events.pageInfo.endCursor ?? state.cursor;
    if (!events.pageInfo.hasNextPage) break;
  }
  return counts;
}

export function OverviewView({ admin }) {
  // History lives for the page's lifetime (a ref, not state: each poll re-renders once).
  const history = useRef({ times: [], appended: [], byType: {}, consumers: {}, tail: {}, last: undefined });
  const poll = usePoll(
    async () => {
      const h = history.current;
      const [consumers, appended] = await Promise.all([
        admin ? gql(CONSUMERS).then((d) => d.consumers) : Promise.resolve([]),
        readAppended(h.tail),
      ]);
      const now = Date.now() / 1000;
      const seconds = h.last ? Math.max(0.001, now - h.last) : undefined;
      h.last = now;
      push(h.times, now);
      const total = Object.values(appended).reduce((a, b) => a + b, 0);
      push(h.appended, seconds ? total / seconds : 0);
      for (const [type, n] of Object.entries(appended)) h.byType[type] = (h.byType[type] ?? 0) + n;
      h.rateByType = Object.fromEntries(
        Object.entries(appended).map(([type, n]) => [type, seconds ? n / seconds : 0]),
      );
      for (const consumer of consumers) {
        h.consumers[consumer.name] ??= { lag: [], rate: [], times: [], handled: undefined };
        const c = h.consumers[consumer.name];
        push(c.times, now);
        push(c.lag, consumer.lag);
        push(
          c.rate,
          seconds && c.handled !== undefined ? Math.max(0, consumer.handled - c.handled) / seconds : 0,
        );
        c.handled = consumer.handled;
      }
      return { consumers, at: new Date() };
    },
    POLL_MS,
    [admin],
  );
  const h = history.current;
  const consumers = poll.data?.consumers ?? [];
  return html`<h1>Overview</h1>
    <p class="meta">Live: polled every ${POLL_MS / 1000} s${poll.data ? `, last at ${poll.data.at.toLocaleTimeString()}` : ''}. Sparklines cover the time this page has been open.</p>
    <${ErrorNote} error=${poll.error} />
    ${
      admin
        ? html`<section aria-labelledby="consumers-h">
            <h2 id="consumers-h">Consumers</h2>
            ${poll.data && consumers.length === 0 ? html`<p>No consumers are registered.</p>` : null}
            <div class="cards">
              ${consumers.map((c) => html`<${ConsumerCard} consumer=${c} series=${h.consumers[c.name]} />`)}
            </div>
          </section>`
        : html`<p class="note">This key can read the event log. Consumers, dead letters and the actions on them need an <code>admin</code> key.</p>`
    }
    <section aria-labelledby="appended-h">
      <h2 id="appended-h">Events appended</h2>
      <div class="panel">
        <div class="metric-row"><span>Appended per second</span><strong data-testid="appended-rate">${num(Math.round((h.appended.at(-1) ?? 0) * 10) / 10)}</strong></div>
        <${Sparkline} times=${[...h.times]} values=${[...h.appended]} label="events appended per second" width=${280} />
        <table class="compact">
          <caption>By type: per second over the last poll, and since this page opened</caption>
          <thead><tr><th scope="col">Type</th><th scope="col" class="num">Per second</th><th scope="col" class="num">Events</th></tr></thead>
          <tbody>
            ${
              Object.keys(h.byType).length === 0
                ? html`<tr><td colspan="3">None yet</td></tr>`
                : Object.entries(h.byType)
                    .sort((a, b) => b[1] - a[1])
                    .map(
                      ([type, n]) =>
                        html`<tr><td><a href=${route('/events', { types: type })}>${type}</a></td>
                          <td class="num">${num(Math.round((h.rateByType?.[type] ?? 0) * 10) / 10)}</td><td class="num">${num(n)}</td></tr>`,
                    )
            }
          </tbody>
        </table>
      </div>
    </section>
    ${admin ? html`<${OptionalPanels} />` : null}`;
}

function ConsumerCard({ consumer: c, series }) {
  const trouble = c.blocked > 0 || c.deadLetters > 0;
  return html`<article class=${`card${trouble ? ' trouble' : ''}`} data-consumer=${c.name}>
    <h3><a href=${route(`/consumer/${encodeURIComponent(c.name)}`)}>${c.name}</a>
      <span class=${`status ${c.status}`}>${c.status}</span></h3>
    <dl class="metrics">
      <div><dt>Lag</dt><dd data-metric="lag">${num(c.lag)}</dd></div>
      <div><dt>Oldest pending</dt><dd data-metric="oldest">${duration(c.oldestPendingMs)}</dd></div>
      <div><dt>Retrying</dt><dd data-metric="retrying">${num(c.retrying)}</dd></div>
      <div><dt>Blocked</dt><dd data-metric="blocked">${num(c.blocked)}</dd></div>
      <div><dt>Dead letters</dt><dd data-metric="dead">${
        c.deadLetters > 0
          ? html`<a href=${route('/dead-letters', { consumer: c.name })}>${num(c.deadLetters)}</a>`
          : '0'
      }</dd></div>
      <div><dt>Handled</dt><dd data-metric="handled">${num(c.handled)}</dd></div>
    </dl>
    <div class="sparks">
      <figure><figcaption>Lag</figcaption>
        <${Sparkline} times=${[...(series?.times ?? [])]} values=${[...(series?.lag ?? [])]} label=${`${c.name} lag`} color="#a4461b" />
      </figure>
      <figure><figcaption>Handled / s</figcaption>
        <${Sparkline} times=${[...(series?.times ?? [])]} values=${[...(series?.rate ?? [])]} label=${`${c.name} handled per second`} />
      </figure>
    </div>
  </article>`;
}
