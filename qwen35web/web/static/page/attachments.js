// The images waiting to go with the next chat message: attached with the file picker, dropped on the
// message box or pasted into it. Each is checked as it comes (the model decodes, resizes and registers
// it: model.addImage), so a bad image is refused at once with one sentence and nothing else changes;
// a good one shows as a thumbnail with a button that takes it off again.

import { drawThumbnail } from "./chat-view.js";

export class Attachments {
  // parts: {list, input, button, dropTarget, pasteTarget}: elements of the page.
  constructor(model, parts, { showError }) {
    this.model = model;
    this.parts = parts;
    this.showError = showError;
    this.items = []; // Blobs (Files), in the order they go into the message
    this.checking = Promise.resolve();
    this.wire();
  }

  wire() {
    const { input, button, dropTarget, pasteTarget } = this.parts;
    button.hidden = false;
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      const files = Array.from(input.files || []);
      input.value = ""; // the same file may be picked again
      this.add(files);
    });
    dropTarget.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
      event.preventDefault();
      dropTarget.classList.add("dropping");
    });
    dropTarget.addEventListener("dragleave", () => dropTarget.classList.remove("dropping"));
    dropTarget.addEventListener("drop", (event) => {
      dropTarget.classList.remove("dropping");
      const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
      if (!files.length) return;
      event.preventDefault();
      this.add(files);
    });
    pasteTarget.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (!files.length) return; // plain text pastes as usual
      event.preventDefault();
      this.add(files);
    });
  }

  // Check and attach files one after the other; a refused one says why and the others still come.
  add(files) {
    this.checking = this.checking.then(async () => {
      for (const file of files) {
        try {
          await this.model.addImage(file);
        } catch (err) {
          this.showError(err.message);
          continue;
        }
        this.items.push(file);
        this.render();
      }
    });
    return this.checking;
  }

  // The attached images for a message being sent (the list empties; `putBack` returns them).
  async take() {
    await this.checking;
    const items = this.items;
    this.items = [];
    this.render();
    return items;
  }

  putBack(items) {
    this.items = [...items, ...this.items];
    this.render();
  }

  render() {
    const { list } = this.parts;
    list.replaceChildren(
      ...this.items.map((blob, index) => {
        const item = document.createElement("figure");
        item.className = "attachment";
        const canvas = document.createElement("canvas");
        drawThumbnail(canvas, blob);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "remove-attachment";
        remove.textContent = "×";
        remove.setAttribute("aria-label", `Remove the image ${blob.name || index + 1}`);
        remove.addEventListener("click", () => {
          this.items.splice(index, 1);
          this.render();
        });
        item.append(canvas, remove);
        return item;
      }),
    );
    list.hidden = !this.items.length;
  }
}
