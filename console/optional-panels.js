// Panels for parts of the API that not every server has yet (destinations, the horizon holders). Each is
// feature-detected without introspection (which production servers turn off): a query for the root field
// alone; a validation error ("Cannot query field") means this server lacks it and the panel stays hidden.
import { useState } from 'preact/hooks';
import { gql, isSchemaMismatch, POLL_MS, usePoll } from './api.js';
import { ErrorNote, html } from './ui.js';

/**
 * Each panel: the probe (root field only), then the query it shows. When the field exists but the detailed
 * query no longer matches the schema, the panel says so instead of hiding.
 */
const PANELS = [
  {
    id: 'horizon',
    title: 'What holds the read horizon back',
    empty: 'Nothing: no transaction older than the newest events is open.',
    probe: '{ horizonHolders { __typename } }',
    query: '{ horizonHolders { pid applicationName state ageMs holdsHorizon query } }',
    rows: (data) => data.horizonHolders,
  },
  {
    id: 'destinations',
    title: 'Destinations',
    empty: 'No destinations are configured.',
    probe: '{ destinations { __typename } }',
    query:
      '{ destinations { name kind state lag retrying blocked deadLetters delivered circuit { state consecutiveFailures } lastError } }',
    rows: (data) =>
      data.destinations.map(({ circuit, ...destination }) => ({
        ...destination,
        circuit: circuit.state,
        failures: circuit.consecutiveFailures,
      })),
  },
];

export function OptionalPanels() {
  return PANELS.map((panel) => html`<${OptionalPanel} key=${panel.id} panel=${panel} />`);
}

function OptionalPanel({ panel }) {
  const [present, setPresent] = useState(undefined);
  const poll = usePoll(
    async () => {
      if (present === false) return undefined;
      if (present === undefined) {
        try {
          await gql(panel.probe);
        } catch (error) {
          if (isSchemaMismatch(error)) {
            setPresent(false);
            return undefined;
          }
          throw error;
        }
        setPresent(true);
      }
      return panel.rows(await gql(panel.query));
    },
    POLL_MS,
    [present],
  );
  if (!present) return null;
  const rows = poll.data ?? [];
  const columns = rows[0] ? Object.keys(rows[0]).filter((key) => key !== '__typename') : [];
  return html`<section aria-labelledby=${`${panel.id}-h`} data-panel=${panel.id}>
    <h2 id=${`${panel.id}-h`}>${panel.title}</h2>
    ${
      poll.error && isSchemaMismatch(poll.error)
        ? html`<p class="error">This server has ${panel.id}, but the console's query does not match its schema: ${poll.error.message}</p>`
        : html`<${ErrorNote} error=${poll.error} />`
    }
    ${
      poll.data && rows.length === 0
        ? html`<p>${panel.empty}</p>`
        : html`<div class="scroll"><table>
            <thead><tr>${columns.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
            <tbody>${rows.map(
              (row) =>
                html`<tr>${columns.map((c) => html`<td>${typeof row[c] === 'object' ? JSON.stringify(row[c]) : String(row[c] ?? '—')}</td>`)}</tr>`,
            )}</tbody>
          </table></div>`
    }
  </section>`;
}
