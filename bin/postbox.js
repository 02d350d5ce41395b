#!/usr/bin/env node
// Thin launcher so `postbox` works as an installed bin: Node ≥ 22.18 strips the types of src/ itself.
import '../src/cli/main.ts';
