import { describe, expect, it } from 'vitest';
import { bindVariables, findVariableReferences, SqlQueryError } from '../../src/sql/psql-variables.ts';
import { parseQueryFile, readQueryCatalogue } from '../../src/sql/query-catalogue.ts';

const names = (sql: string) =>
  findVariableReferences(sql).map((reference) => `${reference.kind}:${reference.name}`);

describe('finding psql variables', () => {
  it('finds :\'name\', :"name" and :name, and skips casts, :=, strings, identifiers, comments and dollar quotes', () => {
    const sql = `
      -- a comment mentioning :'in_comment' and :also
      /* a block /* nested :'nested' */ still :'comment' */
      select :'literal'::timestamptz, x::int, f(a := 1), :raw, :"ident",
             'it''s :not_a_var', E'esc\\' :still_string', "col:umn", $$ :'dollar' $$, $fn$ :x $fn$,
             arr[1:2], a$b$c, :'second'
    `;
    expect(names(sql)).toEqual(['literal:literal', 'raw:raw', 'identifier:ident', 'literal:second']);
  });

  it('gives the line of each reference', () => {
    expect(findVariableReferences("select\n1,\n:'x'").map((reference) => reference.line)).toEqual([3]);
  });

  it('refuses psql meta-commands and unterminated strings', () => {
    expect(() => findVariableReferences('select 1 \\gx')).toThrow(/meta-commands/);
    expect(() => findVariableReferences("select 'open")).toThrow(/unterminated string starting on line 1/);
    expect(() => findVariableReferences('select $tag$ open')).toThrow(/unterminated \$tag\$ body/);
  });
});

describe('binding variables', () => {
  it("turns every :'name' into its own placeholder; values never enter the SQL text", () => {
    const hostile = "x'; drop table shop.orders; --";
    const bound = bindVariables(
      "select * from t where a = :'id' and b > :'from'::timestamptz and c = :'id' -- :'id'",
      { id: hostile, from: 'today' },
    );
    expect(bound.text).toBe("select * from t where a = $1 and b > $2::timestamptz and c = $3 -- :'id'");
    expect(bound.values).toEqual([hostile, 'today', hostile]);
    expect(bound.text).not.toContain('drop');
  });

  it('names every missing variable, and refuses variables the query does not use', () => {
    expect(() => bindVariables("select :'a', :'b', :'a'", {})).toThrow('missing --var a=…, --var b=…');
    expect(() => bindVariables("select :'a'", { a: '1', b: '2', c: '3' })).toThrow(
      'unknown variables b, c: this query takes a',
    );
    expect(() => bindVariables('select 1', { a: '1' })).toThrow(
      'unknown variable a: this query takes no variables',
    );
  });

  it('refuses raw :name and :"name" references instead of pasting text into the SQL', () => {
    const error = (() => {
      try {
        bindVariables('select *\nfrom t limit :n', { n: '1; drop table t' });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(SqlQueryError);
    expect((error as SqlQueryError).message).toMatch(
      /line 2: :n would paste a value into the SQL text.*:'n'/,
    );
    expect(() => bindVariables('select * from :"table"', { table: 't' })).toThrow(/:"table" would paste/);
  });
});

describe('query file headers', () => {
  const header = (parameters: string) =>
    `-- What it answers.\n--\n-- More words about it.\n--\n-- Parameters:${parameters}\n--\n-- Example:\n--   postbox sql q\n`;

  it('reads the title, description, parameters and examples', () => {
    const query = parseQueryFile(
      '/x/q.sql',
      `${header("\n--   :'from'  start, inclusive\n--   :'to'    end, exclusive")}\nselect :'from'::date, :'to'::date;\n`,
    );
    expect(query).toMatchObject({
      name: 'q',
      title: 'What it answers.',
      description: 'More words about it.',
      parameters: [
        { name: 'from', description: 'start, inclusive' },
        { name: 'to', description: 'end, exclusive' },
      ],
      examples: ['postbox sql q'],
    });
  });

  it('refuses a file whose header and variables disagree, or without a header', () => {
    expect(() => parseQueryFile('/x/q.sql', `${header(' none')}\nselect :'id';`)).toThrow(
      /q.sql: variables used but not under "Parameters:": id/,
    );
    expect(() => parseQueryFile('/x/q.sql', `${header("\n--   :'id'  the id")}\nselect 1;`)).toThrow(
      /parameters documented but not used: id/,
    );
    expect(() => parseQueryFile('/x/q.sql', 'select 1;')).toThrow(/no header comment/);
    expect(() => parseQueryFile('/x/q.sql', '-- Title only\nselect 1;')).toThrow(/no "Parameters:" line/);
  });

  it('every file of sql/ parses, binds only quoted variables, and holds one statement', async () => {
    const catalogue = await readQueryCatalogue();
    expect(catalogue.length).toBeGreaterThanOrEqual(13);
    for (const query of catalogue) {
      const values = Object.fromEntries(query.parameters.map((parameter) => [parameter.name, 'v']));
      const bound = bindVariables(query.sql, values);
      // One statement: the only semicolon ends the file.
      const body = bound.text.replace(/--.*$/gm, '').trim();
      expect(body.indexOf(';'), query.name).toBe(body.length - 1);
    }
  });
});
