/**
 * Imported before `@kubernetes/client-node`: its dependencies load Node's deprecated `punycode`
 * module, and the deprecation warning Deno's Node layer prints for it would reach every
 * `pocketci` run that loads the driver (one line per process) as noise on stderr.
 *
 * @module
 */

import process from "node:process";

process.noDeprecation = true;
