/**
 * Training reports: charts (Vega-Lite → SVG → PNG) and `report.html`.
 * @module
 */
export * from "./charts.js";
export * from "./write-report.js";
export * from "./report-callback.js";
