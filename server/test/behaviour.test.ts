/** The behaviour suite once per real client against a real gateway with the unary fast path (the default), on SQLite. */
import { behaviourOfEveryClient } from "./behaviour-every-client.js";

behaviourOfEveryClient("unary fast path (default)", []);
