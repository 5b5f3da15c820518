// A two-turn conversation through /chat with Gradio's own JavaScript client.
// Usage: node chat.mjs <app url> [first message] [second message]
// Prints {"turns": [[chunk, ...], [chunk, ...]]}: every dict streamed by each turn.
import { Client } from "@gradio/client";

const [url, first = "My name is Ada.", second = "What is my name?"] = process.argv.slice(2);
if (!url) {
	console.error("usage: node chat.mjs <app url> [first message] [second message]");
	process.exit(2);
}

async function turn(client, message, session_id) {
	const chunks = [];
	const job = client.submit("/chat", { message, session_id });
	for await (const event of job) {
		if (event.type === "data") {
			// a copy: the client applies the next diff to the same object
			chunks.push(structuredClone(event.data[0]));
		} else if (event.type === "status" && event.stage === "error") {
			throw new Error(`/chat failed: ${event.message}`);
		} else if (event.type === "status" && event.stage === "complete") {
			break;
		}
	}
	return chunks;
}

const client = await Client.connect(url, { events: ["data", "status"] });
const turns = [await turn(client, first, "")];
const session_id = turns[0].at(-1).session_id;
turns.push(await turn(client, second, session_id));
console.log(JSON.stringify({ turns }));
process.exit(0);
