// Live notifications: the server tells this page when something concerns the signed-in person
// (what and where, never the content). A banner links to it.
(function () {
  if (!window.EventSource) return;
  var box = document.getElementById("live");
  if (!box) return;
  var words = {
    entry: "新しい記録があります / new entry",
    reply: "あなたの記録に返信がありました / a reply to your entry",
    mention: "自施設あての記録があります / your facility was mentioned",
    invitation: "ケアチームへの招待があります / a care-team invitation",
    support: "支援依頼が届きました / a support request",
    answer: "支援依頼に回答がありました / an answer to your request",
    emergency: "他施設が緊急アクセスを開始しました / another facility opened emergency access"
  };
  var source = new EventSource("/api/v1/events");
  // Leaving the page ends the stream at once (browsers keep only a few connections per site).
  window.addEventListener("pagehide", function () { source.close(); });
  source.addEventListener("notification", function (event) {
    var n = JSON.parse(event.data);
    var link = document.createElement("a");
    link.href = n.link;
    link.textContent = (n.priority === "urgent" ? "【至急】" : "") + (words[n.kind] || n.kind);
    box.replaceChildren(link);
    box.className = n.priority === "urgent" ? "live urgent" : "live";
    box.hidden = false;
  });
})();
