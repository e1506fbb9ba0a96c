// AutoKöse Studio: the page over the HTTP API (autokose.service.api). Plain JS, no build step, no CDN:
// the studio runs on machines without internet. Every piece of user or story text goes in with
// textContent (via el()), never parsed as HTML, so a caption cannot inject markup.
"use strict";

// ---------------------------------------------------------------- words (English, Russian)

const WORDS = {
  en: {
    "nav.new": "New board", "nav.boards": "Boards", "nav.characters": "Characters",
    "new.title": "New board", "new.logline": "Logline",
    "new.logline.placeholder": "Aldar Köse sells the Bai a golden egg…",
    "new.scenes": "Scenes", "new.scenes.hint": "6–10 tell a whole tale", "new.seed": "Seed",
    "new.renderer": "Renderer", "new.renderer.previz": "Previz (fast, no model)",
    "new.renderer.diffusion": "Diffusion model", "new.model": "Model (path or Hugging Face id)",
    "new.advanced": "More settings", "new.width": "Width", "new.height": "Height", "new.steps": "Steps (diffusion)",
    "new.create": "Create", "new.model.missing": "Type a model path or id for the diffusion renderer.",
    "boards.title": "Boards", "boards.empty": "No boards yet.", "boards.scenes": "{n} scenes",
    "board.cancel": "Cancel", "board.waiting": "Writing the story…",
    "board.hint": "Drag a panel onto another to reorder.", "board.untitled": "Untitled board",
    "board.zip": "ZIP", "board.pdf": "PDF", "board.html": "HTML viewer", "board.sheet": "Contact sheet",
    "board.mp4": "Animatic (MP4)", "board.gif": "Animatic (GIF)", "board.make_animatic": "Make animatic",
    "board.download": "Download:",
    "status.queued": "queued", "status.running": "running", "status.done": "done", "status.failed": "failed",
    "status.cancelled": "cancelled", "status.none": "no job",
    "stage.write": "Story", "stage.cast": "Cast", "stage.stage": "Staging", "stage.render": "Drawing",
    "stage.score": "Scoring", "stage.export": "Export", "stage.train": "Training",
    "panel.scene": "Scene {n}", "panel.edit": "Edit", "panel.rerender": "Re-render", "panel.save": "Save",
    "panel.close": "Close", "panel.left": "Move left", "panel.right": "Move right", "panel.pick": "Pick",
    "panel.kept": "kept", "panel.candidates": "Candidates", "panel.identity": "ID {score}",
    "panel.noframe": "not drawn yet",
    "field.caption": "Caption", "field.prompt": "Prompt", "field.shot": "Shot", "field.angle": "Angle",
    "field.characters": "Characters (ids, comma-separated)", "field.notes": "Notes",
    "chars.title": "Characters", "chars.id": "Id", "chars.id.hint": "lower-case letters, digits, _",
    "chars.name": "Name", "chars.images": "Reference images (PNG, JPEG, WebP)", "chars.upload": "Upload",
    "chars.uploaded": "Uploaded {n} images for {id}.", "chars.images_n": "images: {n}",
    "chars.model": "Base model (path or Hugging Face id)", "chars.steps": "Steps", "chars.train": "Train",
    "chars.empty": "No characters uploaded yet.", "chars.trained": "LoRA trained",
    "err.network": "The server cannot be reached. Is autokose serve still running?",
    "err.auth": "The access token is missing or wrong: open the link autokose serve printed (with ?token=…).",
    "err.status": "The server answered {status}.", "err.close": "Dismiss",
    "lang.switch": "Русский",
    "shot.establishing": "establishing", "shot.wide": "wide", "shot.medium": "medium", "shot.close_up": "close-up",
    "shot.over_the_shoulder": "over the shoulder", "shot.insert": "insert",
    "angle.eye_level": "eye level", "angle.low": "low angle", "angle.high": "high angle",
  },
  ru: {
    "nav.new": "Новая раскадровка", "nav.boards": "Раскадровки", "nav.characters": "Персонажи",
    "new.title": "Новая раскадровка", "new.logline": "Логлайн",
    "new.logline.placeholder": "Алдар Косе продаёт баю золотое яйцо…",
    "new.scenes": "Сцены", "new.scenes.hint": "6–10 сцен — целая сказка", "new.seed": "Зерно (seed)",
    "new.renderer": "Отрисовка", "new.renderer.previz": "Превиз (быстро, без модели)",
    "new.renderer.diffusion": "Диффузионная модель", "new.model": "Модель (путь или id на Hugging Face)",
    "new.advanced": "Дополнительно", "new.width": "Ширина", "new.height": "Высота", "new.steps": "Шаги (диффузия)",
    "new.create": "Создать", "new.model.missing": "Укажите путь или id модели для диффузионной отрисовки.",
    "boards.title": "Раскадровки", "boards.empty": "Раскадровок пока нет.", "boards.scenes": "сцен: {n}",
    "board.cancel": "Отменить", "board.waiting": "Пишется история…",
    "board.hint": "Перетащите кадр на другой, чтобы изменить порядок.", "board.untitled": "Без названия",
    "board.zip": "ZIP", "board.pdf": "PDF", "board.html": "HTML-просмотр", "board.sheet": "Обзорный лист",
    "board.mp4": "Аниматик (MP4)", "board.gif": "Аниматик (GIF)", "board.make_animatic": "Собрать аниматик",
    "board.download": "Скачать:",
    "status.queued": "в очереди", "status.running": "выполняется", "status.done": "готово",
    "status.failed": "ошибка", "status.cancelled": "отменено", "status.none": "нет задач",
    "stage.write": "История", "stage.cast": "Персонажи", "stage.stage": "Мизансцены", "stage.render": "Отрисовка",
    "stage.score": "Оценка", "stage.export": "Экспорт", "stage.train": "Обучение",
    "panel.scene": "Сцена {n}", "panel.edit": "Изменить", "panel.rerender": "Перерисовать",
    "panel.save": "Сохранить", "panel.close": "Закрыть", "panel.left": "Сдвинуть влево",
    "panel.right": "Сдвинуть вправо", "panel.pick": "Выбрать", "panel.kept": "выбран",
    "panel.candidates": "Варианты", "panel.identity": "Сходство {score}", "panel.noframe": "ещё не нарисован",
    "field.caption": "Подпись", "field.prompt": "Промпт", "field.shot": "План", "field.angle": "Ракурс",
    "field.characters": "Персонажи (id через запятую)", "field.notes": "Заметки",
    "chars.title": "Персонажи", "chars.id": "Id", "chars.id.hint": "строчные латинские буквы, цифры, _",
    "chars.name": "Имя", "chars.images": "Референсы (PNG, JPEG, WebP)", "chars.upload": "Загрузить",
    "chars.uploaded": "Загружено изображений для {id}: {n}.", "chars.images_n": "изображений: {n}",
    "chars.model": "Базовая модель (путь или id на Hugging Face)", "chars.steps": "Шаги", "chars.train": "Обучить",
    "chars.empty": "Персонажей пока нет.", "chars.trained": "LoRA обучена",
    "err.network": "Сервер недоступен. Запущен ли autokose serve?",
    "err.auth": "Нет ключа доступа или он неверный: откройте ссылку, которую напечатал autokose serve (с ?token=…).",
    "err.status": "Сервер ответил {status}.", "err.close": "Закрыть",
    "lang.switch": "English",
    "shot.establishing": "общий вид", "shot.wide": "общий план", "shot.medium": "средний план",
    "shot.close_up": "крупный план", "shot.over_the_shoulder": "через плечо", "shot.insert": "деталь",
    "angle.eye_level": "на уровне глаз", "angle.low": "снизу", "angle.high": "сверху",
  },
};
const SHOTS = ["establishing", "wide", "medium", "close_up", "over_the_shoulder", "insert"];
const ANGLES = ["eye_level", "low", "high"];
const STAGES = ["write", "cast", "stage", "render", "score", "export"];
const FINAL = new Set(["done", "failed", "cancelled"]);
const EXPORT_LINKS = [["board.pdf", "board.pdf"], ["animatic.mp4", "board.mp4"], ["animatic.gif", "board.gif"],
  ["board.html", "board.html"], ["sheet.png", "board.sheet"]];
const LANG_KEY = "autokose.lang";

function pickLanguage() {
  // The remembered choice wins; otherwise the browser's language (Russian for ru-*, else English).
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch (e) { /* storage off: not remembered */ }
  if (saved && WORDS[saved]) return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  return String(langs[0] || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
}

let lang = pickLanguage();

function t(key, vars) {
  let s = (WORDS[lang] && WORDS[lang][key]) || WORDS.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
  return s;
}

function translatePage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = lang === "ru" ? "EN" : "RU";
  toggle.title = t("lang.switch");
  toggle.setAttribute("aria-label", t("lang.switch"));
}

// ---------------------------------------------------------------- DOM and API helpers

function el(tag, attrs, ...children) {
  // Builds an element; string children become text nodes, so no user text is ever parsed as HTML.
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const TOKEN = new URLSearchParams(location.search).get("token") || "";

function withToken(path, extra) {
  // EventSource and <img> cannot send headers: they carry the token as ?token=.
  const q = new URLSearchParams(extra || {});
  if (TOKEN) q.set("token", TOKEN);
  const qs = q.toString();
  return qs ? path + (path.includes("?") ? "&" : "?") + qs : path;
}

function filePath(board, file) {
  return "api/boards/" + encodeURIComponent(board) + "/files/" + file.split("/").map(encodeURIComponent).join("/");
}

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function detailText(body, status) {
  // FastAPI says {"detail": "one line"} (ours) or {"detail": [{loc, msg}, ...]} (request validation).
  const d = body && body.detail;
  if (typeof d === "string" && d.trim()) return d;
  if (Array.isArray(d) && d.length) {
    return d.map((e) => {
      const loc = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body").join(".") : "";
      return (loc ? loc + ": " : "") + (e.msg || JSON.stringify(e));
    }).join("; ");
  }
  if (status === 401) return t("err.auth");
  return t("err.status", { status });
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
  const init = { method, headers };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch("api/" + path, init);
  } catch (e) {
    throw new ApiError(t("err.network"), 0);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status === 401 ? t("err.auth") : detailText(data, res.status), res.status);
  return data;
}

function showError(err) {
  // A readable line (the API's "detail"), never a stack trace or a raw response.
  const message = err instanceof ApiError ? err.message : (err && err.message) || String(err);
  if (!(err instanceof ApiError)) console.error(err);
  const box = document.getElementById("messages");
  const item = el("div", { class: "message error" }, el("span", { class: "message-text", text: message }),
    el("button", { type: "button", class: "dismiss", "aria-label": t("err.close"), text: "×",
      onclick: () => item.remove() }));
  box.append(item);
  while (box.children.length > 3) box.firstElementChild.remove();
}

function showNote(message) {
  const box = document.getElementById("messages");
  const item = el("div", { class: "message note" }, el("span", { class: "message-text", text: message }),
    el("button", { type: "button", class: "dismiss", "aria-label": t("err.close"), text: "×",
      onclick: () => item.remove() }));
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

function clearMessages() { document.getElementById("messages").replaceChildren(); }

function guarded(fn) {
  // Event handlers: errors go to the message area.
  return async (...args) => {
    try { await fn(...args); } catch (e) { showError(e); }
  };
}

function pad2(n) { return String(n).padStart(2, "0"); }

// ---------------------------------------------------------------- routing

const state = {
  view: null, board: null, boardId: null, source: null, progress: {}, editing: null, dragFrom: null,
  frameVersion: {}, liveFrames: {}, refreshTimer: null, trainPolls: {}, retryDelay: 0,
};

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, arg] = hash.split("/");
  clearMessages();
  closeEvents();
  if (name === "board" && arg) return showBoard(decodeURIComponent(arg));
  if (name === "new") return showView("new");
  if (name === "characters") return showCharacters();
  return showBoards();
}

function showView(name) {
  state.view = name;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + name;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#" + name);
  }
}

// ---------------------------------------------------------------- new board

async function createBoard(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const num = (name) => (form.elements[name].value === "" ? undefined : Number(form.elements[name].value));
  const body = { logline: form.elements.logline.value, scenes: num("scenes"), seed: num("seed") };
  for (const name of ["width", "height"]) if (num(name) !== undefined) body[name] = num(name);
  if (form.elements.renderer.value === "diffusion") {
    const model = form.elements.model.value.trim();
    if (!model) throw new ApiError(t("new.model.missing"), 0);
    body.model = model;
    if (num("steps") !== undefined) body.steps = num("steps");
  }
  const button = document.getElementById("create");
  button.disabled = true;
  try {
    const made = await api("POST", "boards", body);
    state.progress = {};
    location.hash = "#board/" + encodeURIComponent(made.id);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- boards list

async function showBoards() {
  showView("boards");
  const list = document.getElementById("board-list");
  const seq = ++showBoards.seq;
  const boards = await api("GET", "boards");
  if (seq !== showBoards.seq || state.view !== "boards") return;  // the user moved on meanwhile
  list.replaceChildren(...boards.map((b) => el("li", { class: "board-item" },
    el("a", { href: "#board/" + encodeURIComponent(b.id) },
      el("strong", { text: b.title || t("board.untitled") }),
      el("span", { class: "muted logline", text: b.logline || "" })),
    el("span", { class: "meta" },
      el("span", { class: "status", dataset: { status: b.status || "none" },
        text: t("status." + (b.status || "none")) }),
      b.scenes ? el("span", { text: t("boards.scenes", { n: b.scenes }) }) : null,
      b.created ? el("time", { text: new Date(b.created * 1000).toLocaleString(lang) }) : null))));
  document.getElementById("boards-empty").hidden = boards.length > 0;
}
showBoards.seq = 0;

// ---------------------------------------------------------------- one board

async function showBoard(id) {
  showView("board");
  if (state.boardId !== id) {
    state.boardId = id;
    state.board = null;
    state.progress = {};
    state.editing = null;
    state.frameVersion = {};
    clearBoard();
  }
  await loadBoard();
}

function clearBoard() {
  // Another board: nothing of the last one may linger if this one cannot be loaded.
  for (const id of ["panels", "progress", "downloads"]) document.getElementById(id).replaceChildren();
  for (const id of ["board-title", "board-logline", "board-status", "board-error"]) {
    document.getElementById(id).textContent = "";
  }
  for (const id of ["board-cancel", "board-error", "board-waiting", "board-hint"]) {
    document.getElementById(id).hidden = true;
  }
  delete document.getElementById("board-status").dataset.status;
}

async function loadBoard() {
  const id = state.boardId;
  if (!id || state.view !== "board") return;
  const board = await api("GET", "boards/" + encodeURIComponent(id));
  if (state.boardId !== id || state.view !== "board") return;
  state.board = board;
  if (board.progress && board.progress.stage && !FINAL.has(board.status)) {
    state.progress[board.progress.stage] = board.progress;
  }
  if (board.status === "done") fillProgress();
  renderBoard(board);
  if (board.status === "queued" || board.status === "running") openEvents(id);
}

function fillProgress() {
  // The store keeps only a job's latest progress, so a fast stage can end between two reads of the stream:
  // a finished job finished every stage it reported.
  for (const p of Object.values(state.progress)) p.done = p.total;
}

function scheduleRefresh(delay) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refreshBoard, delay === undefined ? 300 : delay);
}

async function refreshBoard() {
  // The server may be restarting (its jobs resume by themselves): while it cannot be reached, ask again
  // with a growing pause (1 s, 2 s, ... 15 s) instead of leaving the board as it was when the link broke.
  try {
    await loadBoard();
    state.retryDelay = 0;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 0) { showError(e); return; }
    if (!state.retryDelay) showError(e);
    state.retryDelay = Math.min(15000, (state.retryDelay || 500) * 2);
    if (state.view === "board") scheduleRefresh(state.retryDelay);
  }
}

function renderBoard(board) {
  const story = board.story;
  document.getElementById("board-title").textContent = (story && story.title) || t("board.untitled");
  const logline = document.getElementById("board-logline");
  logline.textContent = (story && story.logline) || "";
  if (story && story.language) logline.lang = story.language;
  const status = document.getElementById("board-status");
  status.dataset.status = board.status || "none";
  status.textContent = t("status." + (board.status || "none"));
  const running = board.status === "queued" || board.status === "running";
  document.getElementById("board-cancel").hidden = !running;
  const error = document.getElementById("board-error");
  error.hidden = !board.error;
  error.textContent = board.error || "";
  renderProgress(running);
  renderDownloads(board);
  document.getElementById("board-waiting").hidden = !!story || !running;
  document.getElementById("board-hint").hidden = !story || story.scenes.length < 2;
  renderPanels(board);
}

function renderProgress(running) {
  const box = document.getElementById("progress");
  if (!running && Object.keys(state.progress).length === 0) { box.replaceChildren(); return; }
  const order = STAGES.filter((s) => s in state.progress)
    .concat(Object.keys(state.progress).filter((s) => !STAGES.includes(s)));
  box.replaceChildren(...order.map((stage) => {
    const p = state.progress[stage];
    const total = Math.max(1, Number(p.total) || 0);
    const done = Math.min(total, Number(p.done) || 0);
    return el("div", { class: "stage", dataset: { stage } },
      el("span", { class: "stage-name", text: t("stage." + stage) }),
      el("progress", { max: total, value: done }),
      el("span", { class: "stage-count", text: done + "/" + (Number(p.total) || 0) }));
  }));
}

function renderDownloads(board) {
  const files = new Set(board.files || []);
  const box = document.getElementById("downloads");
  const links = EXPORT_LINKS.filter(([file]) => files.has(file)).map(([file, label]) =>
    el("a", { href: withToken(filePath(board.id, file)), download: file === "board.html" ? null : file,
      target: file === "board.html" ? "_blank" : null, rel: "noopener", class: "download", dataset: { file },
      text: t(label) }));
  if (files.size) {
    links.push(el("a", { href: withToken("api/boards/" + encodeURIComponent(board.id) + "/download.zip"),
      download: board.id + ".zip", class: "download", dataset: { file: "zip" }, text: t("board.zip") }));
  }
  const busy = board.status === "queued" || board.status === "running";
  const children = links.length ? [el("span", { class: "muted", text: t("board.download") }), ...links] : [];
  if (board.story && !files.has("animatic.mp4") && !busy) {
    children.push(el("button", { type: "button", class: "secondary", id: "make-animatic",
      text: t("board.make_animatic"),
      onclick: guarded(() => startJob("boards/" + encodeURIComponent(board.id) + "/export", { exports: ["mp4"] })) }));
  }
  box.replaceChildren(...children);
}

function frameInfo(board, n) {
  const frames = board.frames || {};
  return frames[String(n)] || frames[pad2(n)] || null;
}

function scoreInfo(board, n) {
  const frames = (board.scores && board.scores.frames) || {};
  return frames[pad2(n)] || frames[String(n)] || null;
}

function frameSrc(board, n, info) {
  const version = state.frameVersion[n] || (info && info.sha256 ? "s" + info.sha256.slice(0, 16) : "0");
  return withToken(filePath(board.id, (info && info.file) || "frames/" + pad2(n) + ".png"), { v: version });
}

function renderPanels(board) {
  const grid = document.getElementById("panels");
  const story = board.story;
  if (!story) { grid.replaceChildren(); return; }
  const keep = state.editing !== null ? grid.querySelector('.panel[data-index="' + state.editing + '"]') : null;
  grid.replaceChildren(...story.scenes.map((scene) =>
    keep && Number(keep.dataset.index) === scene.index ? keep : panel(board, scene, story)));
}

function panel(board, scene, story) {
  const n = scene.index;
  const info = frameInfo(board, n);
  const score = scoreInfo(board, n);
  const busy = board.status === "queued" || board.status === "running";
  const count = story.scenes.length;
  const img = info
    ? el("img", { class: "frame", src: frameSrc(board, n, info), alt: t("panel.scene", { n }), loading: "lazy" })
    : el("div", { class: "frame placeholder", text: t("panel.noframe") });
  const badges = el("div", { class: "badges" },
    el("span", { class: "badge shot", text: t("shot." + scene.shot) }),
    el("span", { class: "badge angle", text: t("angle." + scene.angle) }));
  if (score && typeof score.identity === "number") {
    const swapped = Array.isArray(score.id_swaps) && score.id_swaps.length > 0;
    badges.append(el("span", { class: "badge identity", dataset: { status: swapped ? "swap" : score.status || "" },
      title: score.method || "", text: t("panel.identity", { score: score.identity.toFixed(2) }) }));
  }
  const moveTo = (to) => guarded(async () => {
    await api("POST", "boards/" + encodeURIComponent(board.id) + "/scenes/" + n + "/move", { to });
    state.frameVersion = {};
    await loadBoard();
  });
  const node = el("li", { class: "panel", draggable: busy ? null : "true", dataset: { index: n } },
    el("div", { class: "frame-box" }, img),
    el("div", { class: "panel-body" },
      el("div", { class: "panel-head" }, el("span", { class: "scene-no", text: t("panel.scene", { n }) }), badges),
      el("p", { class: "caption", lang: story.language || null, text: scene.caption || "" }),
      scene.dialogue ? el("p", { class: "dialogue", lang: story.language || null, text: scene.dialogue }) : null,
      scene.notes ? el("p", { class: "notes muted", text: scene.notes }) : null,
      candidates(board, n, info, busy),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "edit secondary", disabled: busy, text: t("panel.edit"),
          onclick: () => openEditor(node, scene, story) }),
        el("button", { type: "button", class: "rerender secondary", disabled: busy, text: t("panel.rerender"),
          onclick: guarded(() => startJob("boards/" + encodeURIComponent(board.id) + "/scenes/" + n + "/render",
            {})) }),
        el("button", { type: "button", class: "move-left icon", disabled: busy || n === 1, title: t("panel.left"),
          "aria-label": t("panel.left"), text: "←", onclick: moveTo(n - 1) }),
        el("button", { type: "button", class: "move-right icon", disabled: busy || n === count, title: t("panel.right"),
          "aria-label": t("panel.right"), text: "→", onclick: moveTo(n + 1) }))));
  node.addEventListener("dragstart", (e) => {
    state.dragFrom = n;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", String(n));
    node.classList.add("dragging");
  });
  node.addEventListener("dragend", () => { node.classList.remove("dragging"); state.dragFrom = null; });
  node.addEventListener("dragover", (e) => {
    if (state.dragFrom === null || state.dragFrom === n) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    node.classList.add("drop-target");
  });
  node.addEventListener("dragleave", () => node.classList.remove("drop-target"));
  node.addEventListener("drop", (e) => {
    e.preventDefault();
    node.classList.remove("drop-target");
    const from = Number(e.dataTransfer.getData("text/plain")) || state.dragFrom;
    state.dragFrom = null;
    if (!from || from === n) return;
    guarded(async () => {
      await api("POST", "boards/" + encodeURIComponent(board.id) + "/scenes/" + from + "/move", { to: n });
      state.frameVersion = {};
      await loadBoard();
    })();
  });
  return node;
}

function candidates(board, n, info, busy) {
  const list = (info && info.candidates) || [];
  if (list.length < 2) return null;
  return el("div", { class: "candidates" }, el("span", { class: "muted", text: t("panel.candidates") }),
    el("div", { class: "candidate-row" }, ...list.map((c) => {
      const kept = info.kept === c.k;
      return el("figure", { class: "candidate" + (kept ? " kept" : ""), dataset: { k: c.k } },
        c.file ? el("img", { src: withToken(filePath(board.id, c.file)), alt: "#" + c.k, loading: "lazy" }) : null,
        el("figcaption", null, typeof c.score === "number" ? c.score.toFixed(2) + " " : "",
          kept ? el("span", { class: "muted", text: t("panel.kept") })
            : el("button", { type: "button", class: "pick secondary", disabled: busy, text: t("panel.pick"),
              onclick: guarded(() => startJob("boards/" + encodeURIComponent(board.id) + "/scenes/" + n + "/pick",
                { candidate: c.k })) })));
    })));
}

function openEditor(node, scene, story) {
  if (node.querySelector(".editor")) return;
  state.editing = scene.index;
  const text = (name, value, rows) => el("label", { class: "field" }, el("span", { text: t("field." + name) }),
    rows ? el("textarea", { name, rows, lang: name === "caption" ? story.language : null }, value || "")
      : el("input", { name, type: "text", value: value || "", autocomplete: "off" }));
  const choice = (name, values, value) => el("label", { class: "field" }, el("span", { text: t("field." + name) }),
    el("select", { name },
      ...values.map((v) => el("option", { value: v, selected: v === value, text: t(name + "." + v) }))));
  const form = el("form", { class: "editor" },
    text("caption", scene.caption, 3), text("prompt", scene.prompt, 3),
    el("div", { class: "row" }, choice("shot", SHOTS, scene.shot), choice("angle", ANGLES, scene.angle)),
    text("characters", (scene.characters || []).join(", ")), text("notes", scene.notes, 2),
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "save primary", text: t("panel.save") }),
      el("button", { type: "button", class: "close secondary", text: t("panel.close"),
        onclick: () => { form.remove(); state.editing = null; } })));
  form.addEventListener("submit", guarded(async (e) => {
    e.preventDefault();
    const f = form.elements;
    const patch = {};
    for (const name of ["caption", "prompt", "shot", "angle", "notes"]) {
      if (f[name].value !== (scene[name] || "")) patch[name] = f[name].value;
    }
    const chars = f.characters.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
    if (chars.join(",") !== (scene.characters || []).join(",")) {
      patch.characters = chars;
      // A character taken out of the scene takes its pose with it (the story refuses blocking for the absent).
      const blocking = Object.fromEntries(Object.entries(scene.blocking || {}).filter(([cid]) => chars.includes(cid)));
      if (Object.keys(blocking).length !== Object.keys(scene.blocking || {}).length) patch.blocking = blocking;
    }
    if (Object.keys(patch).length) {
      await api("PATCH", "boards/" + encodeURIComponent(state.boardId) + "/scenes/" + scene.index, patch);
    }
    state.editing = null;
    await loadBoard();
  }));
  node.querySelector(".panel-body").append(form);
  node.draggable = false;
  const first = form.querySelector("textarea, input, select");
  if (first) first.focus();
}

async function startJob(path, body) {
  await api("POST", path, body);
  state.progress = {};
  await loadBoard();
}

// ---------------------------------------------------------------- live events (Server-Sent Events)

function openEvents(id) {
  if (state.source && state.source.boardId === id) return;
  closeEvents();
  const source = new EventSource(withToken("api/boards/" + encodeURIComponent(id) + "/events"));
  source.boardId = id;
  state.source = source;
  const parse = (e) => { try { return JSON.parse(e.data); } catch (err) { return {}; } };
  // A new stream replays the board's older jobs too; their progress and frames are history, not news. Which jobs
  // are history is fixed now: a job that finishes while the stream is open still delivers its last events.
  const jobs = (state.board && state.board.jobs) || [];
  const history = new Set(jobs.filter((j) => FINAL.has(j.status)).map((j) => j.id));
  const stale = (d) => history.has(d.job || d.job_id);
  source.addEventListener("progress", (e) => {
    const p = parse(e);
    if (!p.stage || stale(p)) return;
    const known = p.stage in state.progress;
    state.progress[p.stage] = p;
    if (state.view === "board" && state.boardId === id) renderProgress(true);
    // A new stage: the story (after write) or the saved frames may have changed; fetch the board again.
    if (!known && (!state.board || !state.board.story)) scheduleRefresh();
  });
  source.addEventListener("frame", (e) => {
    const f = parse(e);
    const n = Number(f.index);
    if (!n || stale(f)) return;
    state.frameVersion[n] = "e" + (e.lastEventId || Date.now());  // "e": this frame came live, by an event
    countFrame(f.job || f.job_id, n);
    if (state.view === "board" && state.boardId === id) renderProgress(true);
    const img = document.querySelector('#panels .panel[data-index="' + n + '"] img.frame');
    const file = f.file || "frames/" + pad2(n) + ".png";
    if (img && state.board) img.src = withToken(filePath(id, file), { v: state.frameVersion[n] });
    else scheduleRefresh();
  });
  source.addEventListener("warning", (e) => {
    // What the CLI would print as a warning (a pick that changes nothing, a logline element left out, ...).
    const w = parse(e);
    if (!w.message || stale(w)) return;
    if (state.view === "board" && state.boardId === id) showNote(w.message);
  });
  source.addEventListener("status", (e) => {
    const s = parse(e);
    if (!FINAL.has(s.status) || stale(s)) return;
    if (s.status === "done") fillProgress();
    if (state.view === "board" && state.boardId === id) renderProgress(true);
    scheduleRefresh(100);
  });
  source.onerror = () => {
    // The server closes the stream when the board's jobs are finished: stop here (the browser would reconnect),
    // then ask the board: if a job still runs, loadBoard opens a new stream.
    if (state.source !== source) return;
    closeEvents();
    scheduleRefresh(1000);
  };
}

function countFrame(jobId, n) {
  // The drawing bar from the frames themselves: the store keeps only a job's latest progress, and previz
  // frames land faster than the stream polls, so the render stage's own ticks may never reach the page.
  const seen = (state.liveFrames[jobId] = state.liveFrames[jobId] || new Set());
  seen.add(n);
  const job = state.board && (state.board.jobs || []).find((j) => j.id === jobId);
  const only = job && job.params && Array.isArray(job.params.only) ? job.params.only.length : 0;
  const scenes = state.board && state.board.story ? state.board.story.scenes.length : 0;
  const r = state.progress.render || { stage: "render", done: 0, total: 0 };
  state.progress.render = { stage: "render", done: Math.max(Number(r.done) || 0, seen.size),
    total: Math.max(Number(r.total) || 0, only || scenes, seen.size) };
}

function closeEvents() {
  if (state.source) { state.source.close(); state.source = null; }
}

// ---------------------------------------------------------------- characters

async function showCharacters() {
  showView("characters");
  const list = document.getElementById("char-list");
  const chars = await api("GET", "characters");
  const items = Array.isArray(chars) ? chars : (chars && chars.characters) || [];
  if (!items.length) { list.replaceChildren(el("li", { class: "muted", text: t("chars.empty") })); return; }
  list.replaceChildren(...items.map(characterItem));
}

function characterItem(c) {
  const id = typeof c === "string" ? c : c.id;
  const images = typeof c === "object" && c !== null ? c.images : undefined;
  const count = Array.isArray(images) ? images.length : images;
  const bar = el("div", { class: "train-progress", hidden: true },
    el("progress", { max: 1, value: 0 }), el("span", { class: "stage-count" }));
  const form = el("form", { class: "train" },
    el("label", { class: "field" }, el("span", { text: t("chars.model") }),
      el("input", { name: "model", type: "text", required: true, autocomplete: "off", spellcheck: "false",
        placeholder: "stable-diffusion-v1-5/stable-diffusion-v1-5" })),
    el("label", { class: "field narrow" }, el("span", { text: t("chars.steps") }),
      el("input", { name: "steps", type: "number", min: 1, max: 1000000, value: 500, required: true })),
    el("button", { type: "submit", class: "primary", text: t("chars.train") }));
  form.addEventListener("submit", guarded(async (e) => {
    e.preventDefault();
    const job = await api("POST", "characters/" + encodeURIComponent(id) + "/train",
      { model: form.elements.model.value.trim(), steps: Number(form.elements.steps.value) });
    pollTraining(job.job || job.id, bar);
  }));
  const item = el("li", { class: "char card", dataset: { id } },
    el("div", { class: "panel-head" }, el("strong", { text: (c && c.name) || id }),
      el("code", { text: id }),
      count !== undefined ? el("span", { class: "muted", text: t("chars.images_n", { n: count }) }) : null,
      c && c.trained ? el("span", { class: "badge identity", text: t("chars.trained") }) : null),
    form, bar);
  // A training started earlier (another tab, before a reload): follow it, or show how it ended.
  const training = c && typeof c === "object" ? c.training : null;
  if (training && training.job) pollTraining(training.job, bar, { quiet: FINAL.has(training.status) });
  return item;
}

function pollTraining(jobId, bar, { quiet = false } = {}) {
  // Training has no board, so no event stream: poll the job (GET /api/jobs/{id}) once a second.
  clearInterval(state.trainPolls[jobId]);
  bar.hidden = false;
  const [progress, count] = bar.children;
  const tick = guarded(async () => {
    let job;
    try {
      job = await api("GET", "jobs/" + encodeURIComponent(jobId));
    } catch (e) {
      clearInterval(state.trainPolls[jobId]);
      throw e;
    }
    progress.max = Math.max(1, job.total || 0);
    progress.value = Math.min(progress.max, job.done || 0);
    count.textContent = t("status." + job.status) + " " + (job.done || 0) + "/" + (job.total || 0);
    if (FINAL.has(job.status)) {
      clearInterval(state.trainPolls[jobId]);
      if (job.error && !quiet) showError(new ApiError(job.error, 0));
    }
  });
  state.trainPolls[jobId] = setInterval(tick, 1000);
  tick();
}

async function uploadCharacter(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = document.getElementById("char-submit");
  button.disabled = true;
  try {
    const made = await api("POST", "characters", new FormData(form));
    showNote(t("chars.uploaded", { n: made.images, id: made.id }));
    form.reset();
    await showCharacters();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- start

function start() {
  translatePage();
  document.getElementById("lang-toggle").addEventListener("click", () => {
    lang = lang === "ru" ? "en" : "ru";
    try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* not remembered */ }
    translatePage();
    guarded(route)();
  });
  const renderer = document.getElementById("renderer");
  renderer.addEventListener("change", () => {
    document.getElementById("model-field").hidden = renderer.value !== "diffusion";
    document.getElementById("model").required = renderer.value === "diffusion";
  });
  document.getElementById("new-board").addEventListener("submit", guarded(createBoard));
  document.getElementById("char-upload").addEventListener("submit", guarded(uploadCharacter));
  document.getElementById("board-cancel").addEventListener("click", guarded(async () => {
    await api("POST", "boards/" + encodeURIComponent(state.boardId) + "/cancel");
    await loadBoard();
  }));
  window.addEventListener("hashchange", guarded(route));
  guarded(route)();
}

start();
