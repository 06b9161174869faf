// The demo page: upload images, follow their jobs, show what the service made,
// list an owner's media and delete one. Text from the server or from a file
// name only ever reaches the page as text (textContent, attributes), never as
// HTML.

import { paint } from "./blurhash.js";

const API = document.body.dataset.api;
const MAX_UPLOAD_BYTES = Number(document.body.dataset.maxUploadBytes);
const SOURCE_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HEX_COLOUR = /^#[0-9a-f]{6}$/i;
const TERMINAL = new Set(["COMPLETE", "REJECTED", "FAILED"]);
const PLACEHOLDER_SIZE = 32;
// Rendered width of a card's image, matching the grid in demo.css.
const CARD_SIZES =
  "(max-width: 45rem) calc(100vw - 4rem), (max-width: 66rem) calc(50vw - 4.5rem), 22rem";
const AVATAR_SIZES = "10rem";
const THUMB_SIZES = "4rem";

const REASONS = {
  too_many_pixels:
    "The image has more pixels than the service accepts. " +
    "A smaller or downscaled copy will go through.",
  unsupported_format:
    "This file is not an image type the service accepts. " +
    "Try a JPEG, PNG, WebP, GIF, HEIC or AVIF image.",
  corrupt_image:
    "The file looks like an image but could not be read: it may be damaged or cut short.",
  empty_file: "The file is empty, so there is no image to process.",
  file_too_large: `The file is larger than the upload limit of ${formatBytes(MAX_UPLOAD_BYTES)}.`,
  too_small: "The image is smaller than the smallest width or height the service accepts.",
  too_many_frames: "The animation has more frames than the service accepts.",
  bad_request: "The service could not use the request: a field is missing or malformed.",
  rate_limited: "Too many uploads in a short time. Wait a moment and try again.",
  job_not_found: "The service no longer knows this job.",
};

const elements = {
  form: document.getElementById("owner-form"),
  customType: document.getElementById("source-type-custom"),
  otherType: document.getElementById("source-type-other"),
  sourceId: document.getElementById("source-id"),
  formProblem: document.getElementById("form-problem"),
  dropZone: document.getElementById("drop-zone"),
  fileInput: document.getElementById("file-input"),
  uploads: document.getElementById("uploads"),
  uploadsEmpty: document.getElementById("uploads-empty"),
  listButton: document.getElementById("list-media"),
  ownerStatus: document.getElementById("owner-status"),
  ownerMedia: document.getElementById("owner-media"),
};

let listedOwner = null;
// Upload cards by the id of the media they show, to mark them when it is deleted.
const cardsByMedia = new Map();

// ---- small helpers -------------------------------------------------------

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function apiUrl(path) {
  return API + path;
}

function formatBytes(bytes) {
  if (bytes < 1000) {
    return `${bytes} B`;
  }
  const units = ["kB", "MB", "GB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 100 ? 1 : 0)} ${units[unit]}`;
}

function formatSeconds(milliseconds) {
  return `${(milliseconds / 1000).toFixed(milliseconds < 10000 ? 1 : 0)} s`;
}

/** `url` itself when it is a relative or http(s) URL, else null. */
function safeUrl(url) {
  try {
    const parsed = new URL(url, document.baseURI);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

function srcset(variants) {
  const seen = new Set();
  const candidates = [];
  for (const variant of variants) {
    const url = safeUrl(variant.url);
    if (url && !seen.has(variant.width)) {
      seen.add(variant.width);
      candidates.push(`${url} ${variant.width}w`);
    }
  }
  return candidates.join(", ");
}

/** The image element for a media's variants, its source set and sizes. */
function responsiveImage(media, sizes, alt) {
  const variants = [...media.variants].sort((a, b) => a.width - b.width);
  const fallback = variants[Math.floor((variants.length - 1) / 2)];
  const image = el("img", { alt, decoding: "async" });
  if (fallback) {
    image.width = fallback.width;
    image.height = fallback.height;
    image.sizes = sizes;
    image.srcset = srcset(variants);
    image.src = safeUrl(fallback.url) ?? "";
  }
  return image;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

function sleep(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

function reasonFor(code, httpStatus) {
  if (code && REASONS[code]) {
    return REASONS[code];
  }
  if (httpStatus >= 500 || (code && code.endsWith("unavailable"))) {
    return "The service is having trouble right now; nothing was kept. Try again shortly.";
  }
  return "The service refused this upload.";
}

// ---- the owner (sourceType, sourceId) -------------------------------------

function currentOwner() {
  const checked = elements.form.querySelector('input[name="sourceType"]:checked');
  const sourceType = checked && checked.value ? checked.value : elements.customType.value.trim();
  return { sourceType, sourceId: elements.sourceId.value.trim() };
}

/** The owner, or null after explaining in the form what is wrong with it. */
function validOwner() {
  const owner = currentOwner();
  let problem = "";
  let field = null;
  if (!SOURCE_TYPE.test(owner.sourceType)) {
    problem =
      "Type a source type: 1 to 64 letters, digits, '.', '_' or '-', " +
      "starting with a letter or digit.";
    field = elements.customType;
  } else if (!owner.sourceId) {
    problem = "Type an owner id: whose images these are, such as a user id.";
    field = elements.sourceId;
  }
  elements.formProblem.textContent = problem;
  elements.customType.setAttribute("aria-invalid", String(field === elements.customType));
  elements.sourceId.setAttribute("aria-invalid", String(field === elements.sourceId));
  if (field) {
    field.focus();
    return null;
  }
  return owner;
}

function sameOwner(a, b) {
  return a !== null && b !== null && a.sourceType === b.sourceType && a.sourceId === b.sourceId;
}

// ---- one upload, from the file to the finished media ----------------------

const STEPS = [
  ["upload", "Upload"],
  ["PENDING", "Pending"],
  ["PROCESSING", "Processing"],
  ["outcome", "Complete"],
];

class UploadCard {
  constructor(file, owner) {
    this.file = file;
    this.owner = owner;
    this.started = performance.now();
    this.root = el("li", { class: "card", "data-state": "uploading" });
    this.build();
  }

  build() {
    const { sourceType, sourceId } = this.owner;
    const meta = `${formatBytes(this.file.size)} · ${sourceType} / ${sourceId}`;
    this.canvas = el("canvas", { class: "placeholder", "aria-hidden": "true" });
    this.label = el("span", { class: "frame-label", "aria-hidden": "true" }, "Uploading…");
    this.frame = el("div", { class: "frame is-waiting" }, this.canvas, this.label);
    this.steps = el("ol", { class: "steps", "aria-label": "Job progress" });
    for (const [key, text] of STEPS) {
      const time = el("span", { class: "step-time" });
      const name = el("span", { class: "step-name" }, text);
      this.steps.append(el("li", { "data-step": key }, name, time));
    }
    this.bar = el("progress", { class: "upload-bar", max: "1", value: "0" });
    this.bar.setAttribute("aria-label", `Upload of ${this.file.name}`);
    this.state = el("p", { class: "state", role: "status" }, "Uploading…");
    this.problem = el("div", { class: "problem", role: "alert" });
    this.result = el("div", { class: "result", hidden: "" });
    const head = el(
      "div",
      { class: "card-head" },
      el("h3", { class: "card-title" }, this.file.name || "Pasted image"),
      el("p", { class: "card-meta" }, meta),
    );
    this.root.append(head, this.frame, this.steps, this.bar, this.state, this.problem, this.result);
    this.reach("upload");
  }

  elapsed() {
    return performance.now() - this.started;
  }

  /** Make `key` the current step; the step it ends shows how long it took. */
  reach(key, failed = false) {
    const index = STEPS.findIndex(([name]) => name === key);
    if (index === this.current) {
      return;
    }
    const now = performance.now();
    if (this.current !== undefined) {
      this.showDuration(this.current, now - this.currentSince);
    }
    this.current = index;
    this.currentSince = now;
    const last = key === "outcome";
    for (const [position, item] of [...this.steps.children].entries()) {
      item.classList.toggle("is-done", position < index || (last && !failed));
      item.classList.toggle("is-failed", position === index && failed);
      if (position === index) {
        item.setAttribute("aria-current", "step");
      } else {
        item.removeAttribute("aria-current");
      }
    }
    if (last) {
      this.showDuration(index, this.elapsed());
    }
  }

  showDuration(index, milliseconds) {
    this.steps.children[index].querySelector(".step-time").textContent =
      formatSeconds(milliseconds);
  }

  setState(state, text, label = text) {
    this.root.dataset.state = state;
    this.state.textContent = text;
    this.label.textContent = label;
  }

  uploadProgress(loaded, total) {
    this.bar.value = total ? loaded / total : 0;
    this.label.textContent = `Uploading ${Math.round(this.bar.value * 100)} %`;
  }

  accepted(body) {
    this.jobId = body.jobId;
    this.root.dataset.jobId = body.jobId;
    this.bar.value = 1;
    this.bar.hidden = true;
    this.show({ status: "PENDING", attempts: 0 });
    this.showJson(body, "Upload response JSON");
  }

  /** Show a status record from the service (or the upload's answer). */
  show(job) {
    this.job = job;
    this.showJson(job, "Status JSON");
    if (job.status === "PENDING") {
      this.reach("PENDING");
      this.setState("PENDING", "Waiting for a worker (PENDING).", "Pending");
    } else if (job.status === "PROCESSING") {
      this.reach("PROCESSING");
      const text = `A worker is processing it (PROCESSING, attempt ${job.attempts}).`;
      this.setState("PROCESSING", text, "Processing");
    } else if (job.status === "COMPLETE") {
      this.complete(job);
    } else if (job.status === "REJECTED") {
      this.finish("Rejected", "REJECTED", "Rejected by the worker.");
      this.explain(reasonFor(job.errorCode), job.error);
    } else if (job.status === "FAILED") {
      this.finish("Failed", "FAILED", `Failed after ${job.attempts} attempts.`);
      this.explain("The service could not finish this job; it gave up after retrying.", job.error);
    }
  }

  finish(outcome, state, text) {
    this.steps.lastChild.querySelector(".step-name").textContent = outcome;
    this.reach("outcome", state !== "COMPLETE");
    this.setState(state, text, outcome);
    this.frame.classList.remove("is-waiting");
    this.bar.hidden = true;
  }

  /** The upload itself was refused (an HTTP error) or never arrived. */
  refused(httpStatus, body) {
    const where = httpStatus
      ? `Refused at upload (HTTP ${httpStatus}).`
      : "The upload did not reach the service.";
    this.finish("Refused", "REFUSED", where);
    // No job exists, so there are no job steps to show.
    this.steps.hidden = true;
    this.explain(reasonFor(body.code, httpStatus), body.error);
    if (Object.keys(body).length) {
      this.showJson(body, httpStatus ? `Response JSON (HTTP ${httpStatus})` : "Details");
    }
  }

  explain(reason, serverError) {
    this.problem.replaceChildren(el("p", { class: "problem-reason" }, reason));
    if (serverError) {
      const quote = el("q", {}, serverError);
      this.problem.append(el("p", { class: "problem-server" }, "The service said: ", quote));
    }
  }

  complete(job) {
    const media = job.media;
    this.finish("Complete", "COMPLETE", `Complete in ${formatSeconds(this.elapsed())}.`);
    this.label.textContent = "";
    this.showImage(media);
    this.result.replaceChildren(facts(media), variantTable(media, this.file.size));
    this.result.hidden = false;
    cardsByMedia.set(media.id, this);
  }

  /** The media was deleted: its files are gone, so stop showing them. */
  deleted() {
    this.root.dataset.state = "DELETED";
    this.frame.hidden = true;
    this.result.querySelector(".table-wrap")?.remove();
    this.state.textContent = "Deleted from the service after it completed.";
  }

  showImage(media) {
    const first = media.variants[0] || media;
    const avatar = media.preset === "avatar";
    this.frame.classList.toggle("is-avatar", avatar);
    this.frame.style.aspectRatio = `${first.width} / ${first.height}`;
    if (HEX_COLOUR.test(media.dominantColor)) {
      this.frame.style.backgroundColor = media.dominantColor;
    }
    this.paintPlaceholder(media.blurhash, first.width, first.height);
    const alt = `${this.file.name || "Pasted image"}, as processed by the service`;
    const image = responsiveImage(media, avatar ? AVATAR_SIZES : CARD_SIZES, alt);
    image.classList.add("result-image");
    image.addEventListener("load", () => image.classList.add("is-loaded"), { once: true });
    image.addEventListener("error", () => {
      this.state.textContent = "Complete, but the image did not load from its URL.";
    });
    this.frame.append(image);
  }

  paintPlaceholder(hash, width, height) {
    const scale = PLACEHOLDER_SIZE / Math.max(width, height);
    this.canvas.width = Math.max(1, Math.round(width * scale));
    this.canvas.height = Math.max(1, Math.round(height * scale));
    try {
      paint(this.canvas, hash);
      this.canvas.dataset.blurhash = hash;
    } catch (error) {
      this.canvas.hidden = true;
      console.warn("BlurHash not painted:", error.message);
    }
  }

  /** Show `record` as JSON in a collapsed section at the foot of the card. */
  showJson(record, title) {
    if (!this.json) {
      this.jsonTitle = el("summary");
      this.jsonText = el("code");
      this.json = el("details", { class: "json" }, this.jsonTitle, el("pre", {}, this.jsonText));
      this.root.append(this.json);
    }
    this.jsonTitle.textContent = title;
    this.jsonText.textContent = JSON.stringify(record, null, 2);
  }
}

function facts(media) {
  const list = el("dl", { class: "facts" });
  const add = (term, ...detail) =>
    list.append(el("div", {}, el("dt", {}, term), el("dd", {}, ...detail)));
  add("Original", `${media.width} × ${media.height} px, ${media.originalFormat}`);
  add("Preset", media.preset);
  const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
  if (HEX_COLOUR.test(media.dominantColor)) {
    swatch.style.backgroundColor = media.dominantColor;
  }
  add("Dominant colour", swatch, el("code", {}, media.dominantColor));
  add("BlurHash", el("code", { class: "hash" }, media.blurhash));
  return list;
}

function variantTable(media, uploadBytes) {
  const formats = new Set(media.variants.map((variant) => variant.format));
  const oneFormat = formats.size === 1;
  const columns = ["Variant", "Pixels", ...(oneFormat ? [] : ["Format"]), "Bytes", "Of upload"];
  const body = el("tbody");
  for (const variant of media.variants) {
    body.append(variantRow(variant, uploadBytes, !oneFormat));
  }
  const caption = oneFormat ? `Variants, all ${[...formats][0]}` : "Variants";
  const head = el("tr", {}, ...columns.map((text) => el("th", { scope: "col" }, text)));
  const table = el(
    "table",
    { class: "variants" },
    el("caption", {}, caption),
    el("thead", {}, head),
    body,
  );
  const region = { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Variants" };
  return el("div", region, table);
}

function variantRow(variant, uploadBytes, withFormat) {
  const url = safeUrl(variant.url);
  const name = url
    ? el("a", { href: url, target: "_blank", rel: "noopener" }, variant.name)
    : variant.name;
  const share = uploadBytes ? Math.max(1, Math.round((100 * variant.bytes) / uploadBytes)) : "";
  return el(
    "tr",
    {},
    el("th", { scope: "row" }, name),
    el("td", {}, `${variant.width} × ${variant.height}`),
    ...(withFormat ? [el("td", {}, variant.format)] : []),
    el("td", { class: "number", "data-bytes": String(variant.bytes) }, formatBytes(variant.bytes)),
    el("td", { class: "number" }, share === "" ? "" : `${share} %`),
  );
}

/** POST the file with progress events; resolves to {status, body}. */
function send(file, owner, card) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("sourceType", owner.sourceType);
    form.append("sourceId", owner.sourceId);
    form.append("file", file, file.name || "pasted-image");
    const request = new XMLHttpRequest();
    request.open("POST", apiUrl("upload"));
    request.upload.addEventListener("progress", (event) =>
      card.uploadProgress(event.loaded, event.total),
    );
    request.addEventListener("load", () => {
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = {};
      }
      resolve({ status: request.status, body });
    });
    request.addEventListener("error", () => resolve({ status: 0, body: {} }));
    request.send(form);
  });
}

/** Poll the job until it ends; shows each state on the card on the way. */
async function follow(card) {
  let delay = 200;
  let failures = 0;
  while (!TERMINAL.has(card.job.status)) {
    await sleep(delay);
    delay = Math.min(delay * 1.4, 2000);
    let response;
    try {
      const url = apiUrl(`status/${encodeURIComponent(card.jobId)}`);
      response = await fetch(url, { cache: "no-store" });
    } catch {
      failures += 1;
      if (failures >= 5) {
        return card.refused(0, { error: "The status of the job could not be fetched." });
      }
      continue;
    }
    const body = await readJson(response);
    if (!response.ok) {
      return card.refused(response.status, body);
    }
    card.show(body);
  }
  if (card.job.status === "COMPLETE" && sameOwner(card.owner, listedOwner)) {
    listMedia(listedOwner);
  }
}

async function upload(card) {
  if (card.file.size > MAX_UPLOAD_BYTES) {
    card.refused(413, {
      code: "file_too_large",
      error:
        `Checked in the browser: ${formatBytes(card.file.size)} is over the limit; ` +
        "nothing was sent.",
    });
    return;
  }
  const { status, body } = await send(card.file, card.owner, card);
  if (status !== 202) {
    card.refused(status, body);
    return;
  }
  card.accepted(body);
  await follow(card);
}

function uploadAll(files) {
  if (files.length === 0) {
    return;
  }
  const owner = validOwner();
  if (!owner) {
    return;
  }
  const cards = files.map((file) => new UploadCard(file, owner));
  elements.uploads.prepend(...cards.map((card) => card.root));
  elements.uploadsEmpty.hidden = true;
  for (const card of cards) {
    upload(card).catch((error) => card.refused(0, { error: String(error) }));
  }
}

// ---- an owner's media ------------------------------------------------------

async function listMedia(owner) {
  const status = elements.ownerStatus;
  status.textContent = "Loading…";
  const query = new URLSearchParams(owner);
  let response;
  try {
    response = await fetch(apiUrl(`media?${query}`), { cache: "no-store" });
  } catch {
    status.textContent = "The service could not be reached to list media.";
    return;
  }
  const body = await readJson(response);
  if (!response.ok || !Array.isArray(body)) {
    const reason = body.error || "no reason given";
    status.textContent = `Could not list media (HTTP ${response.status}): ${reason}.`;
    return;
  }
  listedOwner = owner;
  elements.ownerMedia.replaceChildren(...body.map(mediaItem));
  const whose = `${owner.sourceType} / ${owner.sourceId}`;
  status.textContent = body.length
    ? `${body.length} media for ${whose}.`
    : `No completed media for ${whose} yet.`;
}

function mediaItem(media) {
  const item = el("li", { class: "media-item", "data-media-id": media.id });
  const thumb = responsiveImage(media, THUMB_SIZES, `Media ${media.id.slice(0, 8)}`);
  thumb.classList.add("thumb");
  thumb.loading = "lazy";
  if (HEX_COLOUR.test(media.dominantColor)) {
    thumb.style.backgroundColor = media.dominantColor;
  }
  const created = new Date(media.createdAt);
  const title =
    `${media.width} × ${media.height} ${media.originalFormat}, ` +
    `${media.variants.length} variants`;
  const info = el(
    "div",
    { class: "media-info" },
    el("p", { class: "media-title" }, title),
    el("p", { class: "media-meta" }, `Created ${created.toLocaleString()}`),
    el("p", { class: "media-id" }, el("code", {}, media.id)),
  );
  const button = el(
    "button",
    { type: "button", class: "button danger", "aria-label": `Delete media ${media.id}` },
    "Delete",
  );
  const outcome = el("p", { class: "media-outcome" });
  button.addEventListener("click", () => deleteMedia(media, item, button, outcome));
  item.append(thumb, info, button, outcome);
  return item;
}

async function deleteMedia(media, item, button, outcome) {
  button.disabled = true;
  button.textContent = "Deleting…";
  let response;
  try {
    response = await fetch(apiUrl(`media/${encodeURIComponent(media.id)}`), { method: "DELETE" });
  } catch {
    deleteFailed(button, outcome, "The service could not be reached; nothing was deleted.");
    return;
  }
  const body = await readJson(response);
  if (response.ok) {
    item.remove();
    cardsByMedia.get(media.id)?.deleted();
    cardsByMedia.delete(media.id);
    elements.ownerStatus.textContent = `Deleted media ${media.id} (HTTP ${response.status}).`;
    return;
  }
  deleteFailed(button, outcome, deleteProblem(response.status, body));
}

function deleteProblem(httpStatus, body) {
  const said = body.error ? ` The service said: “${body.error}”.` : "";
  if (httpStatus === 405) {
    return `Not deleted (HTTP 405): this server does not allow deleting media.${said}`;
  }
  if (httpStatus === 404) {
    return `Not deleted (HTTP 404): the service has no such media, or no delete route yet.${said}`;
  }
  return `Not deleted (HTTP ${httpStatus}).${said}`;
}

function deleteFailed(button, outcome, message) {
  button.disabled = false;
  button.textContent = "Delete";
  outcome.textContent = message;
  elements.ownerStatus.textContent = message;
}

// ---- wiring ------------------------------------------------------------------

function chooseFiles() {
  elements.fileInput.click();
}

function wireDropZone(zone) {
  zone.addEventListener("click", chooseFiles);
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      chooseFiles();
    } else if (event.key === " ") {
      event.preventDefault();
    }
  });
  zone.addEventListener("keyup", (event) => {
    if (event.key === " ") {
      chooseFiles();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("is-dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) {
      zone.classList.remove("is-dragging");
    }
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    uploadAll([...event.dataTransfer.files]);
  });
}

function wire() {
  document.getElementById("max-size").textContent = formatBytes(MAX_UPLOAD_BYTES);
  wireDropZone(elements.dropZone);
  // A file dropped beside the zone would otherwise replace the page.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
  elements.fileInput.addEventListener("change", () => {
    uploadAll([...elements.fileInput.files]);
    elements.fileInput.value = "";
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length) {
      event.preventDefault();
      uploadAll(files);
    }
  });
  elements.customType.addEventListener("input", () => {
    elements.otherType.checked = true;
  });
  elements.otherType.addEventListener("change", () => elements.customType.focus());
  elements.listButton.addEventListener("click", () => {
    const owner = validOwner();
    if (owner) {
      listMedia(owner);
    }
  });
}

wire();
