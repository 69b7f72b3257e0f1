/**
 * Charts: Vega-Lite specs rendered headless to SVG by Vega, and to PNG by resvg.
 * @module
 */
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** A rendered chart. */
export interface RenderedChart {
  /** The SVG document. */
  svg: string;
  /** The PNG bytes (rendered at `scale`× the SVG size, white background). */
  png: Uint8Array;
}

/** Options of {@link renderChart}. */
export interface RenderChartOptions {
  /** PNG pixels per SVG pixel. Default 2. */
  scale?: number;
}

/** Render a Vega-Lite spec to SVG (Vega's headless renderer) and PNG (resvg, system fonts). */
export async function renderChart(spec: TopLevelSpec, options: RenderChartOptions = {}): Promise<RenderedChart> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    const png = new Resvg(svg, {
      fitTo: { mode: "zoom", value: options.scale ?? 2 },
      background: "white",
      font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
    })
      .render()
      .asPng();
    return { svg, png: new Uint8Array(png) };
  } finally {
    view.finalize();
  }
}

/** One point of a line chart. */
export interface SeriesPoint {
  /** x: the optimizer step. */
  step: number;
  /** y. */
  value: number;
  /** Legend entry (the metric name). */
  series: string;
}

/** The frame every report chart shares: schema, title, 480 × 240 on white. */
function frame(title: string) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    width: 480,
    height: 240,
    background: "white",
  };
}

/** A Vega-Lite line chart of `points` against the step, one colour per series. */
export function lineChartSpec(title: string, points: readonly SeriesPoint[], yTitle = "value"): TopLevelSpec {
  return {
    ...frame(title),
    data: { values: points as SeriesPoint[] },
    mark: { type: "line", point: { size: 20 }, interpolate: "linear" },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field: "value", type: "quantitative", title: yTitle, scale: { zero: false } },
      color: { field: "series", type: "nominal", title: null },
    },
  };
}

/** A Vega-Lite histogram of `values` grouped by `group` (overlaid, semi-transparent). */
export function histogramSpec(
  title: string,
  values: ReadonlyArray<{ value: number; group: string }>,
  xTitle: string,
  bins = 30,
): TopLevelSpec {
  return {
    ...frame(title),
    data: { values: values as Array<{ value: number; group: string }> },
    mark: { type: "bar", opacity: 0.55, binSpacing: 0 },
    encoding: {
      x: { field: "value", type: "quantitative", bin: { maxbins: bins }, title: xTitle },
      y: { aggregate: "count", type: "quantitative", stack: null, title: "texts" },
      color: { field: "group", type: "nominal", title: null },
    },
  };
}
