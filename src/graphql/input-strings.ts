import {
  type DocumentNode,
  type ExecutionResult,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  type ValueNode,
} from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

/** Why a string cannot reach Postgres, or undefined when it can. */
function flaw(value: string): string | undefined {
  // Postgres text and jsonb cannot hold U+0000; a lone surrogate has no UTF-8 encoding.
  if (value.includes('\u0000')) return 'contains a NUL character (U+0000)';
  if (!value.isWellFormed()) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

type Finding = { readonly field: string; readonly problem: string };

function inValue(value: unknown, path: string): Finding | undefined {
  if (typeof value === 'string') {
    const problem = flaw(value);
    return problem ? { field: path, problem } : undefined;
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = inValue(item, `${path}[${index}]`);
      if (found) return found;
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const found = inValue(item, `${path}.${key}`);
      if (found) return found;
      const keyProblem = flaw(key);
      if (keyProblem) return { field: `${path}.${key}`, problem: keyProblem };
    }
  }
  return undefined;
}

function inLiteral(node: ValueNode, path: string): Finding | undefined {
  if (node.kind === Kind.STRING) {
    const problem = flaw(node.value);
    return problem ? { field: path, problem } : undefined;
  }
  if (node.kind === Kind.LIST) {
    for (const [index, item] of node.values.entries()) {
      const found = inLiteral(item, `${path}[${index}]`);
      if (found) return found;
    }
  }
  if (node.kind === Kind.OBJECT) {
    for (const field of node.fields) {
      const found = inLiteral(field.value, `${path}.${field.name.value}`);
      if (found) return found;
    }
  }
  return undefined;
}

/** The arguments written in the document (literals), field by field. */
function inDocument(operation: OperationDefinitionNode, document: DocumentNode): Finding | undefined {
  const selections = [
    operation.selectionSet,
    ...document.definitions.flatMap((definition) =>
      definition.kind === Kind.FRAGMENT_DEFINITION ? [definition.selectionSet] : [],
    ),
  ];
  const pending = [...selections];
  for (let set = pending.pop(); set; set = pending.pop()) {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        for (const argument of selection.arguments ?? []) {
          const found = inLiteral(argument.value, `${selection.name.value}.${argument.name.value}`);
          if (found) return found;
        }
      }
      if ('selectionSet' in selection && selection.selectionSet) pending.push(selection.selectionSet);
    }
  }
  return undefined;
}

/**
 * Refuses, before any resolver runs, an operation whose string inputs (variables or literals) hold what
 * Postgres cannot store: NUL characters, lone surrogates. The client gets `BAD_USER_INPUT` naming the
 * argument or variable path (e.g. `$input.customerId`), nothing is written, and nothing is logged as an
 * error — instead of a database error masked as "Unexpected error." halfway through a write.
 */
export function useWellFormedStrings(): Plugin {
  const check = (args: {
    document: DocumentNode;
    variableValues?: Record<string, unknown> | null | undefined;
    operationName?: string | null | undefined;
  }): ExecutionResult | undefined => {
    const operation = getOperationAST(args.document, args.operationName);
    const found =
      inValue(args.variableValues ?? {}, '$') ??
      (operation ? inDocument(operation, args.document) : undefined);
    if (!found) return undefined;
    const field = found.field.replace(/^\$\./, '$');
    return {
      errors: [
        createGraphQLError(`Invalid value for ${field}: it ${found.problem}`, {
          extensions: { code: 'BAD_USER_INPUT', field, http: { status: 400 } },
        }),
      ],
    };
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const refused = check(args as never);
      if (refused) setResultAndStopExecution(refused);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refused = check(args as never);
      if (refused) setResultAndStopExecution(refused);
    },
  };
}
