// Usage: node tools/dvc_plots/render_check.js dvc_plots/index.html
// Runs the inlined library scripts of a `dvc plots show` page in a bare VM (no DOM, no network,
// no require) and renders the page's first plot spec to SVG: proves the page carries working
// Vega, Vega-Lite and vega-embed code for DVC's specs. Prints "ok <svg bytes> <paths>".
const fs = require("fs");
const vm = require("vm");
const html = fs.readFileSync(process.argv[2], "utf8");
const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
const libs = scripts.filter((s) => /data-package=/.test(s[1]));
const plot = scripts.find((s) => /vegaEmbed\(/.test(s[2]));
if (libs.length !== 3 || !plot) {
  console.error(`expected 3 inlined libraries and a plot, found ${libs.length} and ${plot ? 1 : 0}`);
  process.exit(1);
}
const ctx = { console, setTimeout, clearTimeout, setInterval, clearInterval, structuredClone, URL, TextEncoder, TextDecoder, performance };
ctx.globalThis = ctx;
ctx.self = ctx;
vm.createContext(ctx);
for (const s of libs) vm.runInContext(s[2], ctx);
ctx.spec = JSON.parse(plot[2].match(/var spec = ([\s\S]*?);\s*vegaEmbed/)[1]);
vm.runInContext(
  `(async () => {
     if (typeof vegaEmbed !== "function") throw new Error("vegaEmbed missing");
     const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: "none" });
     return view.toSVG();
   })()`,
  ctx,
).then(
  (svg) => console.log(`ok ${svg.length} ${(svg.match(/<path/g) || []).length}`),
  (err) => { console.error(String(err)); process.exit(1); },
);
