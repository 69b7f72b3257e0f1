/**
 * `@prefkit/callbacks`.
 * @packageDocumentation
 */
export {};
