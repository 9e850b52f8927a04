-- Which stored files no row names any more (issue 12 §1): an upload whose server was killed
-- between storing its encrypted file and committing its row leaves the file behind, named by
-- IDs only and referenced by nothing. The server's housekeeping lists files older than a grace
-- period in the file store and asks this function which of them are orphans, patient by
-- patient (the patient's ID is the folder in the object's name), then deletes those.
--
-- Key maintenance only: it already reads every encrypted value of a patient, row IDs included
-- (`encrypted_values`); this answers less, with the same flag and the same owner policies
-- (`consents_reencrypt`, `attachments_reencrypt`), for the one patient named. Only names in
-- that patient's own folders are ever answered: anything else is never called an orphan.
CREATE FUNCTION public.unreferenced_objects(p_patient uuid, p_names text[])
    RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        consents_folder text := 'consents/' || p_patient::text || '/';
        attachments_folder text := 'attachments/' || p_patient::text || '/';
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF p_patient IS NULL THEN
            RAISE EXCEPTION 'no patient named' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        RETURN QUERY
            SELECT DISTINCT n FROM unnest(p_names) AS n
             WHERE (starts_with(n, consents_folder) OR starts_with(n, attachments_folder))
               AND NOT EXISTS (SELECT 1 FROM public.consents c
                                WHERE c.patient_id = p_patient AND c.scan_object = n)
               AND NOT EXISTS (SELECT 1 FROM public.attachments a
                                WHERE a.patient_id = p_patient
                                  AND (a.object = n OR a.thumbnail = n));
        PERFORM set_config('renrakucho.reencrypt_patient', '', true);
    END
    $$;
REVOKE ALL ON FUNCTION public.unreferenced_objects(uuid, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.unreferenced_objects(uuid, text[]) TO renrakucho_key_maintenance;
