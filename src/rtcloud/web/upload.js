// The Upload Files tab: files chosen in this browser go to the scanner computer (through the
// data service) or to the server, into a folder that computer allows (server/uploads.py).
// Each file is one POST of its bytes, so the browser can report how much has been sent.
// Server-provided text is only ever set with textContent.

const $ = (id) => document.getElementById(id);

const upload = {
  info: null,     // GET /api/upload: {limit, limitText, targets: [{id, label, folders, types, available, note}]}
  busy: false,
};

function target() {
  return upload.info && upload.info.targets.find((t) => t.id === $("upload-target").value);
}

function sizeText(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return unit ? `${size.toFixed(1)} ${units[unit]}` : `${size} bytes`;
}

async function loadRules() {
  let info;
  try {
    const response = await fetch("/api/upload", { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    info = await response.json();
  } catch (error) {
    $("upload-rules").textContent = `Cannot read the upload rules: ${error.message}`;
    return;
  }
  const chosen = $("upload-target").value;
  upload.info = info;
  const select = $("upload-target");
  select.textContent = "";
  for (const t of info.targets) {
    const option = document.createElement("option");
    option.value = t.id;
    option.textContent = t.available ? t.label : `${t.label}: not connected`;
    option.disabled = !t.available;
    select.appendChild(option);
  }
  const keep = info.targets.find((t) => t.id === chosen && t.available);
  select.value = keep ? chosen : (info.targets.find((t) => t.available) || info.targets[0]).id;
  showRules();
}

function showRules() {
  const t = target();
  if (!t) return;
  const lines = [];
  if (t.folders) lines.push(`Allowed folders: ${t.folders.join(", ")}. ${t.note}`);
  else lines.push(t.note);
  lines.push(t.types ? `Allowed types: ${t.types.join(", ")}.` : "Allowed types: those of the data service (its -f option).");
  lines.push(`Up to ${upload.info.limitText} per file.`);
  $("upload-rules").textContent = lines.join(" ");
  const dir = $("upload-dir");
  if (!dir.value || dir.dataset.auto === "1") {
    dir.value = t.folders ? t.folders[0] : "";
    dir.dataset.auto = "1";
  }
  dir.placeholder = t.folders ? "a folder inside an allowed one" : "a full path on the scanner computer";
}

function listLine(text, cls) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  $("upload-list").prepend(li);
  return li;
}

function send(file, t, sent, total) {
  return new Promise((resolve) => {
    const params = new URLSearchParams({
      target: t.id,
      dir: $("upload-dir").value,
      name: file.name,
      replace: $("upload-replace").checked ? "1" : "0",
    });
    const line = listLine(`${file.name} (${sizeText(file.size)}): sending ...`, "busy");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/upload?${params}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      showProgress(sent + event.loaded, total);
      if (event.loaded >= event.total) {
        line.textContent = `${file.name} (${sizeText(file.size)}): saving on ${t.id === "data" ? "the scanner computer" : "the server"} ...`;
      }
    };
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch { answer = { error: xhr.responseText || `status ${xhr.status}` }; }
      if (xhr.status === 200) {
        line.className = "ok";
        line.textContent = `${file.name} (${sizeText(answer.size)}) saved as ${answer.path}`;
      } else {
        line.className = "bad";
        line.textContent = `${file.name}: not uploaded: ${answer.error || `status ${xhr.status}`}`;
      }
      resolve(xhr.status === 200);
    };
    xhr.onerror = () => {
      line.className = "bad";
      line.textContent = `${file.name}: not uploaded: the connection to the server failed`;
      resolve(false);
    };
    xhr.send(file);
  });
}

function showProgress(done, total) {
  const bar = $("upload-progress");
  bar.max = Math.max(total, 1);
  bar.value = Math.min(done, total);
  $("upload-progress-text").textContent = total ? `${Math.floor((100 * done) / total)} % of ${sizeText(total)}` : "";
}

async function uploadChosen() {
  if (upload.busy) return;
  const files = [...$("upload-files").files];
  const t = target();
  if (!files.length || !t) {
    listLine("Choose one or more files first.", "bad");
    return;
  }
  const limit = upload.info.limit;
  showProgress(0, 0);
  const fitting = [];
  for (const file of files) {  // refused here: no need to send what the server refuses
    if (file.size > limit) {
      const near = sizeText(file.size) === upload.info.limitText;  // 3.0 MB vs 3.0 MB: say bytes
      const size = near ? `${file.size} bytes` : sizeText(file.size);
      const most = near ? `${limit} bytes` : upload.info.limitText;
      listLine(`${file.name}: not uploaded: ${size} is more than the limit of ${most}`, "bad");
    } else {
      fitting.push(file);
    }
  }
  if (!fitting.length) return;
  upload.busy = true;
  $("upload-button").disabled = true;
  const total = fitting.reduce((sum, f) => sum + f.size, 0);
  let sent = 0;
  let ok = 0;
  showProgress(0, total);
  for (const file of fitting) {
    if (await send(file, t, sent, total)) ok += 1;
    sent += file.size;
    showProgress(sent, total);
  }
  $("upload-progress-text").textContent += ` (${ok} of ${fitting.length} files saved)`;
  upload.busy = false;
  $("upload-button").disabled = false;
}

$("tab-upload").addEventListener("click", loadRules);
$("upload-target").addEventListener("change", () => {
  $("upload-dir").dataset.auto = "1";
  showRules();
});
$("upload-dir").addEventListener("input", () => { $("upload-dir").dataset.auto = ""; });
$("upload-button").addEventListener("click", uploadChosen);

window.rtcloudUpload = upload;  // for tests and the curious
