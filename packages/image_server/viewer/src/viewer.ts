// The image viewer (an MCP App): shows a generate_image or get_image result at full
// resolution with its prompt, model, size and cost, and makes the next image from it
// or from a photo the person uploads. Every call goes through the host (postMessage);
// the page itself loads only the image from the server's own origin.
import {
  App,
  PostMessageTransport,
  applyDocumentTheme,
  applyHostStyleVariables,
  type McpUiHostContext,
} from "@modelcontextprotocol/ext-apps";

type Image = {
  status?: string;
  url?: string;
  file_name?: string;
  model?: string;
  image_size?: string;
  aspect_ratio?: string | null;
  width?: number | null;
  height?: number | null;
  cost_usd?: string;
  estimated_cost_usd?: string;
  expected_seconds?: number;
  failure?: string | null;
  prompt?: string;
};
type Reply = Image & { images?: Image[] };
type Content = { type: string; text?: string };
type ToolResult = {
  content?: Content[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};
type Reference = { name: string; label: string; checked: boolean };

const GENERATE = "generate_image";
const LOOK_UP = "get_image";
const UPLOAD = "upload_photo";
// The server fills this in as it serves the page: its upload cap, 0 when uploads are off.
const CONFIG = JSON.parse(document.getElementById("viewer-config")?.textContent || "{}");
const UPLOAD_MAX_BYTES = Number(CONFIG.uploadMaxBytes) || 0;
const ACCEPTED = ["image/jpeg", "image/png", "image/webp"];
const FILE_NAME_CHARS = 200;
const POLL_MS = 3000;
const POLL_LIMIT = 200;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const ui = {
  status: $("status"),
  shown: $("shown"),
  image: $<HTMLImageElement>("image"),
  prompt: $("prompt"),
  model: $("model"),
  size: $("size"),
  cost: $("cost"),
  file: $("file"),
  thumbs: $("thumbs"),
  actions: $("actions"),
  variations: $<HTMLButtonElement>("variations"),
  download: $<HTMLButtonElement>("download"),
  open: $<HTMLButtonElement>("open"),
  form: $("next"),
  nextPrompt: $<HTMLTextAreaElement>("next-prompt"),
  refs: $<HTMLFieldSetElement>("refs"),
  refsEmpty: $("refs-empty"),
  use: $<HTMLButtonElement>("use-reference"),
  upload: $<HTMLInputElement>("upload"),
  uploadLabel: $("upload-label"),
  message: $("message"),
};

const state = {
  images: [] as Image[],
  shown: 0,
  prompt: "",
  uploads: [] as Reference[],
  useShown: true,
  busy: false,
  watching: new Set<string>(),
};

const app = new App({ name: "image-mcp viewer", version: "1.0.0" }, {}, { autoResize: true });

// --- showing a result -------------------------------------------------------------

function imagesOf(reply: Reply): Image[] {
  if (Array.isArray(reply.images)) return reply.images;
  return reply.url || reply.status ? [reply] : [];
}

function textOf(result: ToolResult): string {
  const words = (result.content ?? [])
    .filter((c) => c.type === "text" && c.text)
    .map((c) => c.text as string);
  // The last text block repeats the structured content as JSON; the others are prose.
  const prose = words.filter((w) => !w.trimStart().startsWith("{"));
  return (prose.length ? prose : words).join("\n").trim();
}

function setStatus(text: string, kind: "" | "busy" | "failed" = ""): void {
  ui.status.textContent = text;
  ui.status.className = kind ? `status ${kind}` : "status";
  ui.status.hidden = !text;
}

function say(text: string, error = false): void {
  ui.message.textContent = text;
  ui.message.className = error ? "message error" : "message";
  ui.message.hidden = !text;
}

function showResult(result: ToolResult, prompt?: string): void {
  if (result.isError) {
    setStatus(textOf(result) || "The tool reported an error.", "failed");
    return;
  }
  const reply = (result.structuredContent ?? {}) as Reply;
  const images = imagesOf(reply);
  if (!images.length) {
    setStatus(textOf(result) || "No image in this result.", "failed");
    return;
  }
  if (prompt) state.prompt = prompt;
  state.images = images.map((i) => ({ ...i, prompt: i.prompt ?? prompt ?? state.prompt }));
  const firstDone = state.images.findIndex((i) => i.status === "done");
  state.shown = firstDone >= 0 ? firstDone : 0;
  // A new result is the one to go on from; uploads stay listed, unticked.
  state.useShown = true;
  for (const upload of state.uploads) upload.checked = false;
  render();
  for (const image of state.images) {
    if (image.status === "rendering") void watch(image);
    if (!image.prompt && image.file_name) void findPrompt(image);
  }
}

function money(usd?: string): string {
  if (!usd) return "";
  const n = Number(usd);
  if (!Number.isFinite(n)) return usd;
  return n >= 0.01 || n === 0 ? `$${n.toFixed(n >= 1 ? 2 : 3)}` : `$${n.toPrecision(2)}`;
}

function render(): void {
  const image = state.images[state.shown];
  renderThumbs();
  renderRefs();
  if (!image) {
    ui.shown.hidden = true;
    ui.actions.hidden = true;
    return;
  }
  const done = image.status === "done" && !!image.url;
  if (image.status === "rendering") {
    const wait = image.expected_seconds ? `, usually within ${image.expected_seconds} s` : "";
    setStatus(`Still rendering${wait}. It is paid for; this view updates when it is ready.`, "busy");
  } else if (image.status === "failed") {
    setStatus(`This image failed: ${image.failure || "no reason was recorded"}.`, "failed");
  } else if (!state.busy) {
    setStatus("");
  }
  ui.shown.hidden = !done && !image.prompt;
  ui.image.parentElement!.hidden = !done;
  if (done && ui.image.getAttribute("src") !== image.url) {
    if (image.width && image.height) {
      ui.image.width = image.width;
      ui.image.height = image.height;
    }
    ui.image.src = image.url as string;
  }
  ui.image.alt = image.prompt ? `Generated image: ${image.prompt}` : "Generated image";
  ui.prompt.textContent = image.prompt ?? "";
  ui.prompt.hidden = !image.prompt;
  ui.model.textContent = image.model ?? "";
  const px = image.width && image.height ? ` (${image.width}×${image.height} px)` : "";
  ui.size.textContent = `${image.image_size ?? ""}${px}`;
  ui.cost.textContent = money(image.cost_usd ?? image.estimated_cost_usd);
  ui.file.textContent = image.file_name ?? "";
  ui.actions.hidden = !done;
  setBusy(state.busy);
}

function renderThumbs(): void {
  ui.thumbs.replaceChildren();
  ui.thumbs.hidden = state.images.length < 2;
  state.images.forEach((image, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-pressed", String(index === state.shown));
    button.setAttribute("aria-label", `Image ${index + 1} of ${state.images.length}`);
    if (image.status === "done" && image.url) {
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = "";
      button.append(img);
    } else {
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = image.status === "failed" ? "failed" : "rendering";
      button.append(note);
    }
    button.addEventListener("click", () => {
      state.shown = index;
      state.useShown = true;
      render();
    });
    ui.thumbs.append(button);
  });
}

function renderRefs(): void {
  for (const old of Array.from(ui.refs.querySelectorAll("label"))) old.remove();
  const image = state.images[state.shown];
  const choices: { ref: Reference; toggle: (on: boolean) => void }[] = [];
  if (image?.status === "done" && image.file_name) {
    const ref = { name: image.file_name, label: "This image", checked: state.useShown };
    choices.push({ ref, toggle: (on) => (state.useShown = on) });
  }
  for (const upload of state.uploads) {
    choices.push({ ref: upload, toggle: (on) => (upload.checked = on) });
  }
  for (const { ref, toggle } of choices) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = ref.name;
    box.checked = ref.checked;
    box.addEventListener("change", () => toggle(box.checked));
    const text = document.createElement("span");
    text.textContent = `${ref.label} (${ref.name})`;
    label.append(box, text);
    ui.refs.append(label);
  }
  ui.refsEmpty.hidden = choices.length > 0;
}

function chosenReferences(): string[] {
  return Array.from(ui.refs.querySelectorAll<HTMLInputElement>("input[type=checkbox]"))
    .filter((box) => box.checked)
    .map((box) => box.value);
}

function setBusy(busy: boolean): void {
  state.busy = busy;
  for (const b of [ui.variations, ui.use]) b.disabled = busy;
  ui.upload.disabled = busy;
  ui.uploadLabel.setAttribute("aria-disabled", String(busy));
  ui.form.setAttribute("aria-busy", String(busy));
}

// --- still rendering: look again until it settles -----------------------------------

async function watch(image: Image): Promise<void> {
  const name = image.file_name;
  if (!name || state.watching.has(name)) return;
  state.watching.add(name);
  try {
    for (let turn = 0; turn < POLL_LIMIT; turn++) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const result = (await app.callServerTool({
        name: LOOK_UP,
        arguments: { name },
      })) as ToolResult;
      if (result.isError) {
        setStatus(textOf(result) || "Could not look the image up.", "failed");
        return;
      }
      const found = (result.structuredContent ?? {}) as Image;
      if (found.status !== "rendering") {
        Object.assign(image, found);
        render();
        return;
      }
    }
  } catch (error) {
    setStatus(`Could not look the image up: ${describe(error)}`, "failed");
  } finally {
    state.watching.delete(name);
  }
}

// get_image answers without the prompt; the image's record (a resource) has it.
async function findPrompt(image: Image): Promise<void> {
  if (!app.getHostCapabilities()?.serverResources || !image.file_name) return;
  try {
    const read = await app.readServerResource({ uri: `image-mcp://records/${image.file_name}` });
    const first = read.contents[0] as { text?: string } | undefined;
    const record = JSON.parse(first?.text ?? "{}") as { prompt?: string };
    if (record.prompt && !image.prompt) {
      image.prompt = record.prompt;
      if (state.images[state.shown] === image) render();
    }
  } catch {
    // The prompt is a nicety: the image and its facts are shown without it.
  }
}

// --- actions ------------------------------------------------------------------------

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function generate(args: Record<string, unknown>, doing: string): Promise<void> {
  setBusy(true);
  say("");
  setStatus(doing, "busy");
  try {
    const result = (await app.callServerTool({ name: GENERATE, arguments: args })) as ToolResult;
    setBusy(false);
    if (result.isError) {
      setStatus("");
      say(textOf(result) || "The image could not be made.", true);
      return;
    }
    setStatus("");
    showResult(result, String(args.prompt));
    await tellModel(made(result, args));
  } catch (error) {
    setBusy(false);
    setStatus("");
    say(`The image could not be made: ${describe(error)}`, true);
  }
}

function made(result: ToolResult, args: Record<string, unknown>): string {
  const images = imagesOf((result.structuredContent ?? {}) as Reply);
  const lines = images
    .filter((i) => i.file_name)
    .map((i) => `- ${i.file_name} (${i.status}): ${i.url}`);
  const refs = (args.reference_images as string[] | undefined) ?? [];
  return (
    `In the image viewer the person made ${images.length === 1 ? "an image" : `${images.length} images`} ` +
    `with ${GENERATE}, prompt ${JSON.stringify(args.prompt)}` +
    (refs.length ? `, reference images ${refs.join(", ")}` : "") +
    `:\n${lines.join("\n")}\nPass a file name in reference_images to iterate on it.`
  );
}

async function tellModel(text: string): Promise<void> {
  if (!app.getHostCapabilities()?.updateModelContext) return;
  try {
    await app.updateModelContext({ content: [{ type: "text", text }] });
  } catch {
    // The host keeps the tool results; the model context is an addition.
  }
}

// A button, not a form: hosts sandbox the view, and a sandbox without allow-forms
// blocks form submission outright.
function useAsReference(): void {
  const prompt = ui.nextPrompt.value.trim();
  const refs = chosenReferences();
  if (!prompt) {
    say("Type what the next image should show first.", true);
    ui.nextPrompt.focus();
    return;
  }
  if (!refs.length) {
    say("Tick at least one reference, or upload a photo.", true);
    return;
  }
  void generate({ prompt, reference_images: refs }, "Making the next image…");
}

ui.use.addEventListener("click", useAsReference);
ui.nextPrompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (!state.busy) useAsReference();
  }
});

ui.variations.addEventListener("click", () => {
  const image = state.images[state.shown];
  if (!image?.file_name) return;
  const prompt = image.prompt || state.prompt;
  if (!prompt) {
    say("The prompt of this image is not known here; type one and use it as reference.", true);
    return;
  }
  const args: Record<string, unknown> = {
    prompt,
    reference_images: [image.file_name],
    count: 2,
  };
  if (image.model) args.model = image.model;
  if (image.aspect_ratio) args.aspect_ratio = image.aspect_ratio;
  void generate(args, "Making two variations…");
});

ui.open.addEventListener("click", () => {
  const image = state.images[state.shown];
  if (image?.url) void openLink(image.url);
});

ui.download.addEventListener("click", async () => {
  const image = state.images[state.shown];
  if (!image?.url) return;
  if (!app.getHostCapabilities()?.downloadFile) {
    await openLink(image.url);
    return;
  }
  try {
    const answer = await app.downloadFile({
      contents: [
        {
          type: "resource_link",
          uri: image.url,
          name: image.file_name ?? "image.png",
          mimeType: "image/png",
        },
      ],
    });
    if (answer.isError) await openLink(image.url);
  } catch {
    await openLink(image.url);
  }
});

async function openLink(url: string): Promise<void> {
  try {
    const answer = await app.openLink({ url });
    if (answer.isError) say(`The host would not open the link; the image is at ${url}`, true);
  } catch (error) {
    say(`Could not open the link (${describe(error)}); the image is at ${url}`, true);
  }
}

// --- upload a photo -----------------------------------------------------------------

function base64Of(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = () => reject(reader.error ?? new Error("the file could not be read"));
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(",") + 1));
    };
    reader.readAsDataURL(file);
  });
}

ui.upload.addEventListener("change", async () => {
  const file = ui.upload.files?.[0];
  ui.upload.value = "";
  if (!file) return;
  if (file.size > UPLOAD_MAX_BYTES) {
    const mb = (file.size / 1024 / 1024).toFixed(1);
    const cap = Math.round(UPLOAD_MAX_BYTES / 1024 / 1024);
    say(`${file.name} is ${mb} MB; photos up to ${cap} MB can be uploaded.`, true);
    return;
  }
  if (file.type && !ACCEPTED.includes(file.type)) {
    const kind = file.type.startsWith("image/") ? `a ${file.type.slice(6).toUpperCase()} image` : "not a photo";
    say(`${file.name} is ${kind}; upload a JPEG, PNG or WebP (export it from your photo app as JPEG).`, true);
    return;
  }
  setBusy(true);
  say(`Uploading ${file.name}…`);
  try {
    const data = await base64Of(file);
    const result = (await app.callServerTool({
      name: UPLOAD,
      // The server keeps at most this much of a name (and cleans it).
      arguments: { data, file_name: file.name.slice(0, FILE_NAME_CHARS) },
    })) as ToolResult;
    setBusy(false);
    const stored = (result.structuredContent ?? {}) as { name?: string; file_name?: string };
    if (result.isError || !stored.name) {
      say(textOf(result) || "The photo could not be stored.", true);
      return;
    }
    for (const other of state.uploads) other.checked = false;
    // The name as the server cleaned it: no control characters reach the page or the model.
    const shown = stored.file_name || "";
    state.uploads.push({ name: stored.name, label: `Your photo ${shown}`.trim(), checked: true });
    state.useShown = false;
    render();
    say(`Uploaded as ${stored.name}. Describe the next image and use it as reference.`);
    ui.nextPrompt.focus();
    await tellModel(
      `The person uploaded a photo${shown ? ` (${shown})` : ""} in the image viewer. To use it, pass ` +
        `"${stored.name}" in reference_images of ${GENERATE}.`,
    );
  } catch (error) {
    setBusy(false);
    say(`The photo could not be uploaded: ${describe(error)}`, true);
  }
});

// --- the host -----------------------------------------------------------------------

function applyContext(context: McpUiHostContext | undefined): void {
  if (!context) return;
  if (context.theme) applyDocumentTheme(context.theme);
  if (context.styles?.variables) applyHostStyleVariables(context.styles.variables);
}

app.ontoolinput = (params) => {
  const args = (params.arguments ?? {}) as { prompt?: unknown; count?: unknown };
  if (typeof args.prompt === "string") {
    state.prompt = args.prompt;
    const many = typeof args.count === "number" && args.count > 1 ? `${args.count} images` : "the image";
    setStatus(`Making ${many}: ${args.prompt}`, "busy");
  } else {
    setStatus("Looking the image up…", "busy");
  }
};

app.ontoolresult = (result) => showResult(result as ToolResult);

app.ontoolcancelled = () => setStatus("The call was cancelled.", "failed");

app.onhostcontextchanged = (context) => applyContext(context);

app.onteardown = async () => ({});

render();
setStatus("Waiting for the image…", "busy");
app
  .connect(new PostMessageTransport(window.parent, window.parent))
  .then(() => applyContext(app.getHostContext()))
  .catch((error) => setStatus(`The viewer could not reach its host: ${describe(error)}`, "failed"));

// Without uploads on this server, nothing offers them.
if (!UPLOAD_MAX_BYTES) {
  ui.upload.remove();
  ui.uploadLabel.remove();
  ui.refsEmpty.textContent = "No reference yet: wait for the image.";
}
