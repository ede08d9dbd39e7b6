// Follows a running job: appends its new output and updates its status until it ends.
// Text only (textContent), never markup: job output is whatever the playbook printed.
(function () {
  "use strict";
  var output = document.getElementById("job-output");
  var status = document.getElementById("job-status");
  var finished = document.getElementById("job-finished");
  if (!output || output.dataset.active !== "yes") { return; }
  var length = Number(output.dataset.length) || 0;
  var POLL_MS = 1000;

  function follow() {
    fetch(output.dataset.url + "?since=" + length, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        // The session ended, or the job is gone: stop following, leave the page as it is.
        if (response.status === 403 || response.status === 404) { return {status: status.textContent, active: false}; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (job) {
        var atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
        if (job.output) { output.appendChild(document.createTextNode(job.output)); }
        length = job.length || length;
        status.textContent = job.status;
        status.className = "status status-" + job.status;
        finished.textContent = job.finished || finished.textContent;
        if (atBottom) { output.scrollTop = output.scrollHeight; }
        if (job.active) { window.setTimeout(follow, POLL_MS); }
        else { output.dataset.active = "no"; }
      })
      .catch(function () { window.setTimeout(follow, POLL_MS * 5); });
  }
  window.setTimeout(follow, POLL_MS);
}());
