// The web page: upload or pick an image, POST it to /classify, show the predictions and draw the
// attention heatmap from GET /attention/:id. Plain script, no build step.

const $ = (id) => document.getElementById(id);
// CIFAR-10's classes: the examples are shown for a model of these classes (the bundled ones), the ship
// first (the default model gets it right; it gets cat and deer wrong)
const CIFAR10 = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const EXAMPLES = ['ship', ...CIFAR10.filter((n) => n !== 'ship')];
// the colormaps' stops, as the server draws them (server/drawing/heatmap.ts), for the colour scale
const COLORMAPS = {
  jet: ['#000083', '#003cff', '#00ffff', '#ffff00', '#ff3c00', '#800000'],
  viridis: ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'],
  inferno: ['#000004', '#57106e', '#bc3754', '#f98e09', '#fcffa4'],
  gray: ['#000000', '#ffffff'],
};
// one sentence per method: what it shows, and why the default is the default (docs/explanations.md
// in the repository has the faithfulness figures these sentences cite)
const METHOD_HELP = {
  relevance:
    "Why this class (the default): the last block's attention weighted by the gradient of the class's score, " +
    'carried down through the layers below. About the cost of a classification, and ahead of rollout and [CLS] ' +
    "attention on all six faithfulness tests on both bundled models (docs/explanations.md in vitrine's repository).",
  chefer:
    "Chefer's rule: every block's attention weighted by the gradient of the class's score. As faithful as the " +
    'default or a little more on the seed ViT, behind it on the compact model; about three times the cost.',
  'grad-input': "Gradient × input, per patch: where a change of the pixels would move the class's score the most.",
  combined:
    '(Chefer + rollout) × √(gradient × input): the most faithful map on the compact model, by a few points; ' +
    'about three times the cost.',
  rollout:
    "Attention rollout: how much each patch's information reaches the class token through all the layers. " +
    'The same for every class: it shows where the model looked, not why it chose a class.',
  cls: "One layer's attention from the class token to each patch: the same for every class; a glimpse of one layer.",
};
let uploads = []; // this session's own uploads, as examples for a model of other classes
let apiKey = sessionStorage.getItem('vitrine-key') || '';
let current = null; // { id, model, layers, methods, classMethods (those that explain one class), labels, cls: the class they explain }
let lastImage = null; // the image shown, so that another model can classify it again
let served = {}; // name -> what GET /models says of it
// Answers can come back out of order (a model switched while the last image's map is still drawing):
// each classification and each draw takes a number, and only the latest one writes to the page.
let classifying = 0;
let drawing = 0;

function headers() {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

async function api(url, options = {}) {
  const res = await fetch(url, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (res.status === 401) {
    const key = prompt('This server needs an API key:');
    if (key) {
      apiKey = key;
      sessionStorage.setItem('vitrine-key', key);
      return api(url, options);
    }
  }
  return res;
}

/** An element with properties and children (nodes or text): what the server sends (model names,
 *  labels) only ever becomes text, never markup. */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
  if (isError) $('status').scrollIntoView({ block: 'nearest' });
}

/** A failed request leaves nothing of the previous image on screen beside the error. */
function clearOutput() {
  current = null;
  $('output').hidden = true;
  $('predictions').replaceChildren();
  $('timings').textContent = '';
  $('heatmap').removeAttribute('src');
  $('original').removeAttribute('src');
}

async function errorText(res) {
  try {
    const body = await res.json();
    return `${body.error}: ${body.message}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

// The models served, read again every 10 s while the page is shown and when it is shown again: models
// loaded, reloaded and unloaded while serving appear and go without a reload of the page. The list is
// rebuilt only when it changed, and keeps the model chosen while it is served.
let listed = '';
async function loadModels() {
  const res = await api('/models');
  if (!res.ok) return;
  const { default: def, models } = await res.json();
  served = Object.fromEntries(models.map((m) => [m.name, m]));
  const label = (m) => `${m.name} (${m.provider}${m.precision?.classification === 'int8' ? ', int8' : ''})`;
  const text = models.map(label).join('\n');
  if (text === listed) return;
  listed = text;
  const chosen = served[$('model').value] ? $('model').value : def;
  $('model').replaceChildren(...models.map((m) => el('option', { value: m.name, selected: m.name === chosen }, label(m))));
  showExamples();
}
const refreshModels = () => document.visibilityState === 'visible' && loadModels().catch(() => {});

/** The examples the chosen model can be asked about: CIFAR-10's for a model of its classes, else
 *  this session's recent uploads (none at first). */
function showExamples() {
  const info = served[$('model').value];
  const cifar = info && info.labels.length === CIFAR10.length && CIFAR10.every((c) => info.labels.includes(c));
  const buttons = cifar
    ? EXAMPLES.map((n) => {
        const b = el('button', { type: 'button', title: n }, el('img', { src: `examples/${n}.png`, alt: n }));
        b.dataset.name = n;
        return b;
      })
    : uploads.map((u, i) => {
        const b = el('button', { type: 'button', title: `your upload ${i + 1}` }, el('img', { src: u.url, alt: `your upload ${i + 1}` }));
        b.dataset.upload = String(i);
        return b;
      });
  $('examples').replaceChildren(...buttons);
  $('examples-title').textContent = cifar ? 'Or try one of these (CIFAR-10, 32 x 32)' : 'Your recent images';
  $('examples-block').hidden = buttons.length === 0;
}

/** An upload kept (the last six) as an example for models without CIFAR-10's. */
function remember(blob) {
  if (uploads.some((u) => u.blob === blob)) return;
  uploads = [{ blob, url: URL.createObjectURL(blob) }, ...uploads].slice(0, 6);
  showExamples();
}

async function classify(blob) {
  lastImage = blob;
  const mine = ++classifying;
  drawing++; // a map still drawing for the previous image is not shown over this one
  status('Classifying…');
  const form = new FormData();
  form.append('image', blob, 'image');
  const model = $('model').value;
  // the map shown first is the top class's relevance: asked with the classification, it is made in
  // the same run and kept with the result, so drawing it runs the model no more
  // the default map comes with the classification (one run of the light graph); the others are drawn after
  const inline = served[model]?.methods.includes('relevance') && $('method').value === 'relevance' ? '&attention=relevance' : '';
  let res;
  try {
    res = await api(
      `/classify?topk=5${model ? `&model=${encodeURIComponent(model)}` : ''}${$('tta').checked ? '&tta=flip' : ''}${inline}`,
      { method: 'POST', body: form },
    );
  } catch (err) {
    if (mine !== classifying) return;
    clearOutput();
    status(`the server did not answer: ${err.message}`, true);
    return;
  }
  if (!res.ok) {
    const text = await errorText(res);
    if (mine !== classifying) return;
    clearOutput();
    status(text, true);
    return;
  }
  const body = await res.json();
  if (mine !== classifying) return;
  current = {
    id: body.id,
    model: body.model,
    layers: 0,
    methods: [],
    classMethods: [],
    labels: [],
    cls: body.predictions[0] ? body.predictions[0].index : 0,
  };
  // shown as the model sees it: the centre square of the image, or the whole image stretched to the
  // model's shape (Hugging Face processors resize so)
  const stretched = served[body.model] && served[body.model].input.fit === 'fill';
  $('original').style.objectFit = stretched ? 'fill' : 'cover';
  $('original-caption').textContent = stretched
    ? "Image: stretched to the model's input, as the model sees it"
    : 'Image: the centre square the model sees';
  $('original').src = URL.createObjectURL(blob);
  $('output').hidden = false;
  // each prediction is a button: "why this class?" shows its relevance map
  $('predictions').replaceChildren(
    ...body.predictions.map((p, i) => {
      const bar = el('span', { className: 'bar' });
      bar.style.width = `${Math.max(0.5, p.probability * 45).toFixed(1)}%`;
      const why = el(
        'button',
        { type: 'button', className: `why${i === 0 ? ' chosen' : ''}`, title: `why ${p.label}?` },
        el('span', { className: 'label' }, p.label),
        bar,
        `${(100 * p.probability).toFixed(1)}%`,
      );
      why.dataset.index = String(p.index);
      return el('li', {}, why);
    }),
  );
  const t = body.timings;
  $('timings').textContent =
    `decode ${t.decode_ms.toFixed(1)} ms · queue ${t.queue_ms.toFixed(1)} ms · ` +
    `inference ${t.inference_ms.toFixed(1)} ms (batch of ${t.batch_size}) · total ${t.total_ms.toFixed(1)} ms`;
  $('heatmap-figure').hidden = !body.attention;
  $('controls').hidden = !body.attention;
  if (body.attention) {
    const info = served[body.model];
    current.layers = info ? info.outputs.attentions.length : 0;
    current.methods = info ? info.methods : [];
    current.classMethods = info ? info.class_methods : [];
    current.labels = info ? info.labels : [];
    // relevance is the default where the model has it; the methods GET /models does not list for it are hidden
    for (const option of $('method').options) option.hidden = option.disabled = !current.methods.includes(option.value);
    if (!current.methods.includes($('method').value)) $('method').value = 'rollout';
    $('layer').replaceChildren(
      ...Array.from({ length: current.layers }, (_, i) =>
        el('option', { value: String(i), selected: i === current.layers - 1 }, String(i + 1)),
      ),
    );
    if (await drawHeatmap()) status(''); // false where a newer classification took its place
  } else {
    $('heatmap').removeAttribute('src');
    status('This model has no attention outputs, so no maps (vitrine import gives a ViT exported to ONNX its maps).');
  }
}

/** The colour scale under the heatmap: the colormap from the map's lowest value to its highest, and a
 *  word when the map is nearly uniform (its colours then stretch a small difference). */
function showScale(header, method) {
  const [low, high] = (header ?? '').split(',').map(Number);
  const known = Number.isFinite(low) && Number.isFinite(high);
  $('scale').hidden = !known;
  $('scale-note').hidden = true;
  if (!known) return;
  const fmt = (v) => (v === 0 ? '0' : Math.abs(v) >= 1e-4 && Math.abs(v) < 1e4 ? v.toPrecision(3) : v.toExponential(2));
  $('scale-low').textContent = fmt(low);
  $('scale-high').textContent = fmt(high);
  $('scale-bar').style.background = `linear-gradient(to right, ${COLORMAPS[$('colormap').value].join(', ')})`;
  const spread = Math.abs(high) > 0 ? (high - low) / Math.abs(high) : 0;
  if (spread < 0.25) {
    $('scale-note').textContent =
      `This ${method} map is nearly uniform: its values differ by ${(100 * spread).toFixed(0)}% of its highest, so it says ` +
      'little about where the model looked (the colours stretch that small difference).';
    $('scale-note').hidden = false;
  }
}

/** Every map the model serves, side by side, for the class shown (the class maps) and the image. */
async function compareMethods() {
  if (!current) return;
  const id = current.id;
  const figures = await Promise.all(
    current.methods.map(async (method) => {
      const q = new URLSearchParams({ method, alpha: $('alpha').value, colormap: $('colormap').value, size: '128' });
      if (current.classMethods.includes(method)) q.set('class', String(current.cls));
      const res = await api(`/attention/${id}?${q}`);
      const caption = el('figcaption', {}, method === 'relevance' ? 'relevance (default)' : method);
      if (!res.ok) return el('figure', {}, caption, el('p', {}, await errorText(res)));
      return el('figure', {}, el('img', { src: URL.createObjectURL(await res.blob()), alt: `${method} map` }), caption);
    }),
  );
  if (!current || current.id !== id) return;
  $('strip').replaceChildren(...figures);
  $('strip').hidden = false;
  document.documentElement.dataset.stripDrawn = String(figures.length);
}

const CAPTIONS = {
  relevance: 'relevance',
  chefer: 'attention relevance',
  'grad-input': 'gradient × input',
  combined: 'combined relevance',
};

/** Draws the map the controls ask for; false where a newer draw or classification took its place.
 *  Each draw, drawn or dropped, counts in the page's data-draws-settled (what a test waits on). */
async function drawHeatmap() {
  try {
    return await drawHeatmapNow();
  } finally {
    document.documentElement.dataset.drawsSettled = String(Number(document.documentElement.dataset.drawsSettled ?? 0) + 1);
  }
}

async function drawHeatmapNow() {
  if (!current) return false;
  const mine = ++drawing;
  const method = $('method').value;
  const forClass = current.classMethods.includes(method);
  $('layer-row').hidden = method !== 'cls';
  $('head-row').hidden = forClass;
  const q = new URLSearchParams({ method, alpha: $('alpha').value, colormap: $('colormap').value, size: '256' });
  if (method === 'cls') q.set('layer', $('layer').value);
  if (!forClass) q.set('head', $('head').value);
  else q.set('class', String(current.cls));
  for (const b of document.querySelectorAll('#predictions .why'))
    b.classList.toggle('chosen', forClass && Number(b.dataset.index) === current.cls);
  const res = await api(`/attention/${current.id}?${q}`);
  if (!res.ok) {
    const text = await errorText(res);
    if (mine !== drawing) return false;
    status(text, true);
    return false;
  }
  const png = await res.blob();
  if (mine !== drawing) return false;
  $('heatmap').src = URL.createObjectURL(png);
  showScale(res.headers.get('x-vitrine-map-range'), method);
  $('method-help').textContent = METHOD_HELP[method] ?? '';
  $('strip').hidden = true;
  $('heatmap-caption').textContent =
    method === 'rollout'
      ? 'Attention rollout'
      : method === 'cls'
        ? `[CLS] attention, layer ${Number($('layer').value) + 1}`
        : `Why "${current.labels[current.cls] ?? current.cls}": ${CAPTIONS[method]}`;
  return true;
}

function setup() {
  const drop = $('drop');
  const upload = (file) => {
    remember(file);
    classify(file);
  };
  $('file').addEventListener('change', (e) => e.target.files[0] && upload(e.target.files[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  // the drop zone takes the keyboard focus: Enter or Space opens the file picker
  drop.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    e.preventDefault();
    $('file').click();
  });
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  $('examples').addEventListener('click', async (e) => {
    const button = e.target.closest('button');
    if (!button) return;
    if (button.dataset.upload !== undefined) classify(uploads[Number(button.dataset.upload)].blob);
    else classify(await (await fetch(`examples/${button.dataset.name}.png`)).blob());
  });
  $('compare').addEventListener('click', compareMethods);
  for (const id of ['method', 'layer', 'head', 'alpha', 'colormap']) $(id).addEventListener('change', drawHeatmap);
  $('model').addEventListener('change', () => {
    showExamples();
    if (lastImage) classify(lastImage);
  });
  $('tta').addEventListener('change', () => lastImage && classify(lastImage));
  $('predictions').addEventListener('click', (e) => {
    const button = e.target.closest('button.why');
    if (!button || !current || !current.methods.includes('relevance')) return;
    current.cls = Number(button.dataset.index);
    if (!current.classMethods.includes($('method').value)) $('method').value = 'relevance';
    drawHeatmap();
  });
  loadModels().catch((err) => status(String(err), true));
  setInterval(refreshModels, 10_000);
  document.addEventListener('visibilitychange', refreshModels);
}

setup();
