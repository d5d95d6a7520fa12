// Load a `qwen35web export --layout transformers.js` folder with @huggingface/transformers, unmodified,
// and report what it computes for one prompt, as JSON on stdout:
//
//   node run_model.mjs REQUEST.json
//   REQUEST: {"folder": "/abs/path/to/export", "prompt": "text", "new_tokens": 16, "stop_at_eos": false}
//
// The model is loaded the way a user loads a local model (env.localModelPath, no remote models); the
// only thing observed from outside is the session's run(): each call's input names and position_ids,
// which is how the test sees the decode positions transformers.js computes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
env.localModelPath = path.dirname(request.folder);
env.allowRemoteModels = false;
const name = path.basename(request.folder);

const tokenizer = await AutoTokenizer.from_pretrained(name);
const model = await AutoModelForCausalLM.from_pretrained(name);
const session = model.sessions.model;

// Every run's feeds: the input names and the position_ids it passes ([3, B, T] as nested lists).
const runs = [];
const run = session.run.bind(session);
session.run = (feeds, ...rest) => {
    const positions = feeds.position_ids;
    runs.push({
        inputs: Object.keys(feeds),
        position_ids: { dims: positions.dims, data: Array.from(positions.data, Number) },
    });
    return run(feeds, ...rest);
};

const encoded = tokenizer(request.prompt);
// A plain forward call takes position_ids from the caller (generate() computes them itself):
// transformers.js's own get_rope_index gives them, and its mrope delta for the decode steps.
const [position_ids, rope_deltas] = model.get_rope_index(encoded.input_ids, null, null, encoded.attention_mask);
const prefill = await model({ ...encoded, position_ids });
runs.length = 0;

// Greedy, exactly new_tokens tokens (min_new_tokens keeps eos out, as transformers' min_new_tokens), or
// with `stop_at_eos` at most new_tokens, ending at the folder's generation_config.json eos ids.
const sequences = await model.generate({
    ...encoded,
    max_new_tokens: request.new_tokens,
    min_new_tokens: request.stop_at_eos ? 0 : request.new_tokens,
    do_sample: false,
});
const promptLength = encoded.input_ids.dims[1];

process.stdout.write(
    JSON.stringify({
        model_class: model.constructor.name,
        sessions: Object.keys(model.sessions),
        session_inputs: session.inputNames,
        input_ids: Array.from(encoded.input_ids.data, Number),
        position_ids: { dims: position_ids.dims, data: Array.from(position_ids.data, Number) },
        rope_deltas: Array.from(rope_deltas.data, Number),
        logits: { dims: prefill.logits.dims, data: Array.from(prefill.logits.data) },
        generated: Array.from(sequences.data, Number).slice(promptLength),
        generate_runs: runs,
    }),
);
