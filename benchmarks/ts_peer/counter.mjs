// The keyed counter of benchmarks/apps.py (`BenchCounter/count`) on Restate's TypeScript SDK:
// one state read and one write per record. Plain JavaScript, so no compile step.
import * as http2 from "node:http2";
import * as restate from "@restatedev/restate-sdk";

// The SDK calls Promise.withResolvers (Node 22); Debian's Node here is 20. Called at run
// time only, so defining it before the first request is enough.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const counter = restate.object({
  name: "TsBenchCounter",
  handlers: {
    count: async (ctx, _event) => {
      const current = (await ctx.get("count")) ?? 0;
      ctx.set("count", current + 1);
    },
  },
});

// Loopback only, like every server the project starts (listen() would bind all interfaces).
const port = Number(process.argv[2] ?? "9080");
http2.createServer(restate.endpoint().bind(counter).http2Handler()).listen(port, "127.0.0.1");
