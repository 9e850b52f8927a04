// Passkeys: a form with data-passkey="create" (register) or "get" (sign in) carries the
// server's WebAuthn options as JSON in data-options. On submit the browser's authenticator is
// asked; its answer goes back in the form's hidden "credential" field, and the form is sent.
// The server checks everything; this only converts between JSON and the browser's buffers.
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) {
      el.hidden = false;
    });
    document.querySelectorAll("form[data-passkey] button[type=submit]").forEach(function (b) {
      b.disabled = true;
    });
    return;
  }

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: toBuffer(d.id) });
    });
  }

  function creationOptions(json) {
    var o = json.publicKey;
    return {
      publicKey: Object.assign({}, o, {
        challenge: toBuffer(o.challenge),
        user: Object.assign({}, o.user, { id: toBuffer(o.user.id) }),
        excludeCredentials: descriptors(o.excludeCredentials)
      })
    };
  }

  function requestOptions(json) {
    var o = json.publicKey;
    // The button asks now: no "conditional" (autofill) mediation.
    return {
      publicKey: Object.assign({}, o, {
        challenge: toBuffer(o.challenge),
        allowCredentials: descriptors(o.allowCredentials)
      })
    };
  }

  function created(credential) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        attestationObject: toText(credential.response.attestationObject),
        clientDataJSON: toText(credential.response.clientDataJSON),
        transports: credential.response.getTransports ? credential.response.getTransports() : []
      }
    };
  }

  function asserted(credential) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        authenticatorData: toText(credential.response.authenticatorData),
        clientDataJSON: toText(credential.response.clientDataJSON),
        signature: toText(credential.response.signature),
        userHandle: toText(credential.response.userHandle)
      }
    };
  }

  // The message in Japanese, then in English marked as such.
  function show(form, ja, en) {
    var box = form.querySelector("[data-passkey-error]");
    if (!box) return;
    var english = document.createElement("span");
    english.lang = "en";
    english.textContent = en;
    box.replaceChildren(document.createTextNode(ja + " "), english);
    box.hidden = false;
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var kind = form.getAttribute("data-passkey");
      var options = JSON.parse(form.getAttribute("data-options"));
      var asked = kind === "create"
        ? navigator.credentials.create(creationOptions(options)).then(created)
        : navigator.credentials.get(requestOptions(options)).then(asserted);
      asked.then(function (answer) {
        form.querySelector("input[name=credential]").value = JSON.stringify(answer);
        form.submit();
      }, function (e) {
        var already = e && e.name === "InvalidStateError";
        if (already) {
          show(form, "この認証器のパスキーはすでに登録されています。",
            "This authenticator's passkey is already registered.");
        } else {
          show(form, "パスキーを使えませんでした。もう一度お試しください。",
            "The passkey could not be used; try again.");
        }
      });
    });
  });
})();
