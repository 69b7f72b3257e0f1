/**
 * `@prefkit/losses`.
 * @packageDocumentation
 */
export {};
