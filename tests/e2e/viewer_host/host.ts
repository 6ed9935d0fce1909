// A minimal MCP Apps host for the browser test of the image viewer, built on the SDK's
// own host side (AppBridge + PostMessageTransport) and MCP client. It does what a host
// such as Claude does: finds the ui:// resource generate_image names, reads it from the
// server, renders it in a sandboxed frame under a CSP made from the resource's declared
// domains, proxies the view's tool calls to the server, and delivers a tool result.
// Everything it sees is kept on window.__host for the test to read.
import {
  AppBridge,
  PostMessageTransport,
  getToolUiResourceUri,
} from "@modelcontextprotocol/ext-apps/app-bridge";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

type Csp = { resourceDomains?: string[]; connectDomains?: string[] };

const query = new URLSearchParams(location.search);
const token = query.get("token") ?? "";
const theme = query.get("theme") === "dark" ? "dark" : "light";
const prompt = query.get("prompt") ?? "a lighthouse at dusk";

const seen = {
  ready: false,
  error: "",
  resourceUri: "",
  csp: "",
  calls: [] as { name: string; arguments?: Record<string, unknown> }[],
  links: [] as string[],
  downloads: [] as unknown[],
  context: [] as unknown[],
  first: null as unknown,
};
(window as unknown as { __host: typeof seen }).__host = seen;

// As the MCP Apps spec has hosts build it: only what the resource declared may load.
function policy(csp: Csp): string {
  const from = (csp.resourceDomains ?? []).join(" ");
  const connect = (csp.connectDomains ?? []).join(" ") || "'none'";
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${from}`,
    `style-src 'unsafe-inline' ${from}`,
    `img-src data: blob: ${from}`,
    `font-src ${from}`,
    `media-src ${from}`,
    `connect-src ${connect}`,
    "frame-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
  ].join("; ");
}

async function main(): Promise<void> {
  const client = new Client(
    { name: "viewer-test-host", version: "1.0.0" },
    {
      capabilities: {
        extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } },
      },
    },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL("/mcp", location.origin), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  const { tools } = await client.listTools();
  const generate = tools.find((t) => t.name === "generate_image");
  const uri = generate ? getToolUiResourceUri(generate) : undefined;
  if (!uri) throw new Error("generate_image names no ui:// resource");
  seen.resourceUri = uri;
  const read = await client.readResource({ uri });
  const page = read.contents[0] as { text?: string; _meta?: { ui?: { csp?: Csp } } };
  if (!page?.text) throw new Error("the ui:// resource has no text");
  seen.csp = policy(page._meta?.ui?.csp ?? {});
  const meta = `<meta http-equiv="Content-Security-Policy" content="${seen.csp}">`;
  const html = page.text.replace(/<head>/i, `<head>${meta}`);

  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.title = "Image viewer";
  document.getElementById("app")!.append(frame);

  const bridge = new AppBridge(
    null,
    { name: "viewer-test-host", version: "1.0.0" },
    {
      openLinks: {},
      downloadFile: {},
      serverTools: {},
      serverResources: {},
      updateModelContext: { text: {} },
    },
    {
      hostContext: {
        theme,
        platform: "web",
        displayMode: "inline",
        availableDisplayModes: ["inline"],
        locale: "en-GB",
      },
    },
  );
  bridge.oncalltool = async (params) => {
    seen.calls.push({ name: params.name, arguments: params.arguments });
    return (await client.callTool(params)) as never;
  };
  bridge.onreadresource = async (params) => (await client.readResource(params)) as never;
  bridge.onopenlink = async ({ url }) => {
    seen.links.push(url);
    return {};
  };
  bridge.ondownloadfile = async (params) => {
    seen.downloads.push(params);
    return {};
  };
  bridge.onupdatemodelcontext = async (params) => {
    seen.context.push(params);
    return {};
  };
  bridge.onsizechange = ({ height }) => {
    if (height) frame.style.height = `${Math.ceil(height)}px`;
  };
  const initialized = new Promise<void>((resolve) => {
    bridge.oninitialized = () => resolve();
  });
  const view = frame.contentWindow!;
  await bridge.connect(new PostMessageTransport(view, view));
  frame.srcdoc = html;
  await initialized;

  const args = { prompt };
  await bridge.sendToolInput({ arguments: args });
  const result = await client.callTool({ name: "generate_image", arguments: args });
  seen.first = result;
  await bridge.sendToolResult(result as never);
  seen.ready = true;
}

main().catch((error: unknown) => {
  seen.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
});
