/** The behaviour suite once per real client against a real gateway on PostgreSQL (a fresh schema of the local server). */
import { behaviourOfEveryClient } from "./behaviour-every-client.js";

behaviourOfEveryClient("PostgreSQL store", [], true);
