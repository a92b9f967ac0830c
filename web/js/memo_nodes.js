// Canvas behaviour of the MEMO nodes (served through WEB_DIRECTORY in the pack's __init__.py).
//
// 1. MEMO Load Audio gets core Load Audio's audio player and upload button. The frontend adds its
//    player widget (AUDIO_UI) only to the core audio classes, and its upload widget (AUDIOUPLOAD)
//    needs that player to exist first, so the Python node declares a plain file combo and this
//    extension adds both widgets, player first. Without this file (or on a frontend without those
//    widget types) the node stays a working file dropdown.
// 2. MEMO Render Video / Render Dialogue / Video Combine: the progress previews sent while rendering take priority
//    over the node's output in the frontend, so the finished mp4 would stay hidden behind the last
//    preview frame; when the node reports its output the previews are dropped and the frontend
//    shows the video as it does for core Save Video (see dropPreviews for where they live).
// 3. MEMO State Carry shows its info text ("8 of 16 frames done ...") in a read-only box; the other
//    MEMO nodes show the text they report (warnings: a damaged audio file, a small face, settings far
//    from the trained ones, a checkpoint that could not be resumed) in the same kind of box, added
//    only when there is something to show.
import { app } from "../../../scripts/app.js";   // served at /extensions/<pack>/js/

const AUDIO_LOADERS = new Set(["MemoLoadAudio"]);
const VIDEO_OUTPUTS = new Set(["MemoRenderVideo", "MemoRenderDialogue", "MemoVideoCombine"]);
const TEXT_OUTPUTS = new Set(["MemoryStateCarry"]);
const NOTE_NODES = new Set(["MemoLoadAudio", "MemoFacePrep", "MemoSampler", "MemoRenderVideo"]);
const INFO_WIDGET = "memo_info";

function chain(proto, name, after) {
  const original = proto[name];
  proto[name] = function (...args) {
    const result = original?.apply(this, args);
    after.apply(this, args);
    return result;
  };
}

function addAudioWidgets(nodeData) {
  const required = nodeData?.input?.required;
  if (!required || !Array.isArray(required.audio)) return;
  if (required.audioUI || required.upload) return; // the frontend already does it
  // key order = widget order after the declared inputs: player first, then the upload button
  required.audioUI = ["AUDIO_UI", {}];
  required.upload = ["AUDIOUPLOAD", {}];
}

function hideFromPrompt(node, name) {
  const widget = node.widgets?.find((w) => w.name === name);
  if (widget) {
    widget.serialize = false;
    widget.options = { ...(widget.options ?? {}), serialize: false };
  }
}

const PREVIEW_WIDGETS = new Set(["$$canvas-image-preview", "$$comfy_animation_preview"]);

// The frontend's own store of node outputs and previews ("nodeOutput", a Pinia store), or null.
// No public extension API drops a node's progress previews: frontends up to 1.35 read them from
// app.nodePreviewImages, which extensions may edit, but 1.58 keeps them in this store and only
// mirrors them into app.nodePreviewImages, and nothing clears them when the node has executed, so
// the last preview frame would hide the mp4 for good. The store (and its revokePreviewsByLocatorId,
// the frontend's own way of dropping a node's previews, present from 1.27 to 1.58) is reached
// through the Pinia instance behind app.extensionManager (itself a Pinia store) or the Vue app;
// each step is feature-detected, so a frontend without it keeps the app.nodePreviewImages path.
function nodeOutputStore() {
  const pinia = app.extensionManager?._p ??
    document.getElementById("vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
  const store = pinia?._s?.get?.("nodeOutput");
  return typeof store?.revokePreviewsByLocatorId === "function" ? store : null;
}

function dropPreviews(node) {
  // the progress frames live in the frontend's store (1.58), app.nodePreviewImages (URLs, read by
  // frontends up to 1.35, a mirror in 1.58) and node.imgs (loaded pictures)
  const locatorId = node.graph && !node.graph.isRootGraph ? `${node.graph.id}:${node.id}` : String(node.id);
  nodeOutputStore()?.revokePreviewsByLocatorId(locatorId);
  const previews = app.nodePreviewImages;
  if (previews) {
    for (const key of [locatorId, String(node.id)]) {
      if (key in previews) delete previews[key];
    }
  }
  node.imgs = undefined;
  node.imageIndex = null;
  if (node.widgets) {
    for (const w of node.widgets.filter((w) => PREVIEW_WIDGETS.has(w.name))) {
      w.onRemove?.();
      node.widgets.splice(node.widgets.indexOf(w), 1);
    }
  }
  node.setDirtyCanvas?.(true, true);
}

function addInfoBox(node, placeholder = "Where the video stands appears here after a run.") {
  const existing = node.widgets?.find((w) => w.name === INFO_WIDGET);
  if (existing) return existing;
  const box = document.createElement("textarea");
  box.readOnly = true;
  box.placeholder = placeholder;
  box.className = "comfy-multiline-input memo-info";
  box.style.fontSize = "12px";
  const widget = node.addDOMWidget(INFO_WIDGET, "memo_info", box, {
    serialize: false,
    getValue: () => box.value,
    setValue: (v) => { box.value = v ?? ""; },
    getMinHeight: () => 72,
  });
  widget.serialize = false;
  return widget;
}

app.registerExtension({
  name: "MEMO.nodes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData?.name;
    if (AUDIO_LOADERS.has(name)) {
      addAudioWidgets(nodeData);
      chain(nodeType.prototype, "onNodeCreated", function () { hideFromPrompt(this, "audioUI"); });
    }
    if (VIDEO_OUTPUTS.has(name)) {
      chain(nodeType.prototype, "onExecuted", function () { dropPreviews(this); });
    }
    if (NOTE_NODES.has(name)) {
      chain(nodeType.prototype, "onExecuted", function (message) {
        const text = message?.text;
        const widget = text?.length ? addInfoBox(this, "") : this.widgets?.find((w) => w.name === INFO_WIDGET);
        if (widget) widget.value = text?.length ? text.join("\n") : "";
      });
    }
    if (TEXT_OUTPUTS.has(name)) {
      chain(nodeType.prototype, "onNodeCreated", function () { addInfoBox(this); });
      chain(nodeType.prototype, "onExecuted", function (message) {
        const text = message?.text;
        const widget = this.widgets?.find((w) => w.name === INFO_WIDGET);
        if (widget && text?.length) widget.value = text.join("\n");
      });
    }
  },
});
