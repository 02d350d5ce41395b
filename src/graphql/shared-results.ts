import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  type FieldNode,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  print,
  visit,
} from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';
import type { GraphQLContext } from './context.ts';

/**
 * A subscription result computed once for every subscriber of the same selection: the object every one
 * of them gets, and its JSON text, built by the first transport that asks for it (see {@link sharedJson}).
 */
const SHARED_JSON = Symbol('postbox.sharedJson');

interface SharedResult extends ExecutionResult {
  [SHARED_JSON]?: string;
}

/**
 * The JSON text of a result shared by every subscriber of its selection, serialised once on first use;
 * `undefined` for any other result (serialise it yourself). The WebSocket transport sends it as the
 * message's payload.
 */
export function sharedJson(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null || !(SHARED_JSON in result)) return undefined;
  const shared = result as SharedResult;
  shared[SHARED_JSON] ??= JSON.stringify(result);
  return shared[SHARED_JSON];
}

/**
 * Marks a result as shared: non-enumerable, so no serialiser sees the marks. `stringify` is graphql-yoga's
 * hook for a result's own serialiser (its SSE and HTTP result processors call `result.stringify(result)`),
 * so an SSE subscriber gets the text the first subscriber's serialisation left behind.
 */
function markShared(result: ExecutionResult): ExecutionResult {
  Object.defineProperty(result, SHARED_JSON, { value: undefined, writable: true, enumerable: false });
  Object.defineProperty(result, 'stringify', {
    value: (value: unknown) => (value === result ? sharedJson(result) : JSON.stringify(value)),
    enumerable: false,
  });
  return result;
}

/** Results already computed for one event, by selection key. */
type ResultsByKey = Map<string, ExecutionResult | Promise<ExecutionResult>>;

/** Options of {@link useSharedSubscriptionResults}. */
export interface SharedSubscriptionResultsOptions {
  /**
   * Subscription root fields whose result depends only on the event (the root value), the selection and
   * its variables, and the caller's scopes: never on the field's own arguments (they choose which events
   * arrive, not what an event looks like) nor on anything else of the context. Events are shared only
   * when the feed hands every subscriber the very same event object (the log tailer's fan-out).
   */
  readonly fields: ReadonlySet<string>;
}

/**
 * Executes each event of a subscription once per distinct selection instead of once per subscriber.
 *
 * graphql-js executes a subscription's selection for every event and every subscriber: with 1,000
 * subscribers of one event that is 1,000 identical executions and 1,000 serialisations of the same result.
 * For the root fields in `fields`, subscribers are grouped by a key that captures everything the result of
 * one event can depend on: the root field's response name (alias), the selection below it and the
 * fragments it may use, the values of the variables the selection refers to, and the caller's scopes (field
 * checks run with them). The first subscriber of a group to see an event executes it; the others get the
 * same result object — and, through {@link sharedJson} and yoga's `stringify` hook, the same JSON text.
 * Filters and cursors are per subscriber (they live in each one's feed): two subscribers with different
 * filters share the events both receive.
 *
 * The cache hangs off the event object (a `WeakMap`), so it lives exactly as long as some subscriber still
 * holds that event. Operations it does not recognise (several root fields, fragments at the root, other
 * fields) run as graphql-js runs them.
 */
export function useSharedSubscriptionResults(
  options: SharedSubscriptionResultsOptions,
): Plugin<GraphQLContext> {
  const resultsByEvent = new WeakMap<object, ResultsByKey>();
  const shapes = new WeakMap<DocumentNode, Map<string, SelectionShape | null>>();
  return {
    onSubscribe({ args, setSubscribeFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'subscription') return;
      let byOperation = shapes.get(args.document);
      if (!byOperation) {
        byOperation = new Map();
        shapes.set(args.document, byOperation);
      }
      const operationKey = args.operationName ?? '';
      let shape = byOperation.get(operationKey);
      if (shape === undefined) {
        shape = selectionShape(args.document, operation, options.fields);
        byOperation.set(operationKey, shape);
      }
      if (shape === null) return;
      const key = groupKey(shape, args.variableValues, args.contextValue);
      setSubscribeFn(async (subscribeArgs: ExecutionArgs) => {
        const source = await createSourceEventStream(subscribeArgs);
        if (!isAsyncIterable(source)) return source;
        return mapAsyncIterator(source, (event: unknown) => {
          if (typeof event !== 'object' || event === null) {
            return execute({ ...subscribeArgs, rootValue: event });
          }
          let results = resultsByEvent.get(event);
          if (!results) {
            results = new Map();
            resultsByEvent.set(event, results);
          }
          let result = results.get(key);
          if (!result) {
            const executed = execute({ ...subscribeArgs, rootValue: event });
            result =
              executed instanceof Promise
                ? executed.then((value) => (value.errors ? value : markShared(value)))
                : executed.errors
                  ? executed
                  : markShared(executed);
            results.set(key, result);
          }
          return result;
        });
      });
    },
  };
}

/** What below the root field determines an event's result (see {@link selectionShape}). */
interface SelectionShape {
  /** The printed root field (alias and selection, without its arguments) and every fragment of the document. */
  readonly text: string;
  /** Variables the selection or a fragment refers to (the root field's own arguments excepted). */
  readonly variables: readonly string[];
}

/** The shape of a subscription to share; `null` when the operation is not one to share. */
function selectionShape(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  fields: ReadonlySet<string>,
): SelectionShape | null {
  const selections = operation.selectionSet.selections;
  const root = selections[0];
  if (selections.length !== 1 || root?.kind !== Kind.FIELD || !fields.has(root.name.value)) return null;
  // Directives on the root field (@skip/@include) decide whether it runs at all: leave those to graphql-js.
  if (root.directives && root.directives.length > 0) return null;
  const fragments = document.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION);
  const used = new Set<string>();
  for (const node of [root.selectionSet, ...fragments]) {
    if (!node) continue;
    visit(node, {
      Variable(variable) {
        used.add(variable.name.value);
      },
    });
  }
  const withoutArguments: FieldNode = { ...root, arguments: [] };
  return {
    text: [print(withoutArguments), ...fragments.map((fragment) => print(fragment)).sort()].join('\n'),
    variables: [...used].sort(),
  };
}

/** The group of a subscriber: its selection's shape, the values of the variables it uses, and its scopes. */
function groupKey(
  shape: SelectionShape,
  variableValues: ExecutionArgs['variableValues'],
  context: GraphQLContext,
): string {
  const values = shape.variables.map((name) => variableValues?.[name] ?? null);
  const scopes = [...context.principal.scopes].sort();
  return JSON.stringify([shape.text, values, scopes]);
}
