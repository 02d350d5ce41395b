#!/usr/bin/env node
// The `postbox` command. Installed from the package it runs the compiled JavaScript in dist/ (any Node ≥ 22);
// in a checkout without a build it runs src/ directly (Node ≥ 22.18 strips the types).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('../src/cli/main.ts', import.meta.url).href);
