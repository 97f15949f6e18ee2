-- Argo CD health of a millrace Flow, from what the operator writes in its status
-- (operator/millrace/cluster/operator.py, flow_changed; schedules): the Ready condition
-- (False with every validation error when the flow cannot run), observedGeneration,
-- the schedule's suspend, and the phase of the newest run the schedule started.
local hs = {status = "Progressing", message = "waiting for the operator to check the flow"}
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "the operator has not checked generation " .. generation .. " yet"
  return hs
end
local ready = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready == nil then
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason or "the flow is not ready"
  return hs
end
if ready.status ~= "True" then
  return hs
end
local schedule = obj.spec ~= nil and obj.spec.schedule or nil
if schedule ~= nil and schedule.suspend == true then
  hs.status = "Suspended"
  hs.message = "its schedule is suspended"
  return hs
end
if status.lastRunPhase == "Failed" then
  hs.status = "Degraded"
  hs.message = "its last run " .. (status.lastRun or "") .. " failed"
  return hs
end
hs.status = "Healthy"
hs.message = ready.message or "the flow passed validation"
return hs
