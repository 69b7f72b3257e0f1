/**
 * `@prefkit/models`.
 * @packageDocumentation
 */
export {};
