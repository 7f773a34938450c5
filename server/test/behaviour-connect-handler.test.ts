/** The behaviour suite once per real client against a real gateway with Connect's handler serving every call (--no-fast-path), on SQLite. */
import { behaviourOfEveryClient } from "./behaviour-every-client.js";

behaviourOfEveryClient("Connect's handler only (--no-fast-path)", ["--no-fast-path"]);
