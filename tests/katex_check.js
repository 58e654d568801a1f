// Renders every LaTeX string given (a JSON array of {name, tex}) with KaTeX in display
// mode, throwing on any error. Prints one line per failure and a closing count.
const fs = require("fs");
const katex = require(process.env.MATDIFF_KATEX);
const items = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const { name, tex } of items) {
  try {
    katex.renderToString(tex, { displayMode: true, throwOnError: true, strict: "error" });
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.message}\n  ${tex}`);
  }
}
console.log(`katex: ${items.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 && items.length > 0 ? 0 : 1);
