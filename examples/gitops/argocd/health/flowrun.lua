-- Argo CD health of a millrace FlowRun, from what the operator writes in its status
-- (operator/millrace/cluster/status.py): the phase, the error of a failed run, the
-- step running now or waiting for an approval, and observedGeneration.
local hs = {status = "Progressing", message = "waiting for the operator"}
local status = obj.status
if status == nil or status.phase == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "the operator has not seen generation " .. generation .. " yet"
  return hs
end
local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "the run succeeded"
elseif phase == "Failed" or phase == "Cancelled" then
  hs.status = "Degraded"
  hs.message = phase == "Failed" and "the run failed" or "the run was cancelled"
  if status.error ~= nil and status.error.message ~= nil then
    hs.message = hs.message .. ": " .. (status.error.name or "Error") .. ": " .. status.error.message
  end
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "waiting for an approval"
  if status.suspendedStep ~= nil then
    hs.message = hs.message .. " at step " .. status.suspendedStep
  end
elseif phase == "Running" then
  hs.message = "steps are running"
  if status.currentStep ~= nil then
    hs.message = "running step " .. status.currentStep
  end
elseif phase == "Pending" then
  hs.message = "the run has not started"
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(phase)
end
return hs
