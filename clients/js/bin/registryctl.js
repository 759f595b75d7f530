#!/usr/bin/env node
// registryctl: see `registryctl --help` and README.md.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
