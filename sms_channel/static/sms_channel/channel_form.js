// SMS channel form: offer only the chosen connector's phone numbers, without
// a reload. The server narrows the choices too, so the form works without this.
'use strict';
{
    function init() {
        const connector = document.getElementById('id_connector');
        const phoneNumber = document.getElementById('id_phone_number');
        if (!connector || !phoneNumber || !phoneNumber.dataset.optionsUrl) {
            return;
        }
        let latestRequest = 0;
        let shownConnector = connector.value;

        function updateAddLink() {
            // A number added from the "+" popup starts on the chosen connector.
            const addLink = document.getElementById('add_id_phone_number');
            if (!addLink) {
                return;
            }
            const url = new URL(addLink.href);
            if (connector.value) {
                url.searchParams.set('connector', connector.value);
            } else {
                url.searchParams.delete('connector');
            }
            addLink.href = url.toString();
        }

        async function refresh() {
            // The admin fires change on every related select at page load; the
            // server already narrowed the choices for the connector shown then.
            if (connector.value === shownConnector) {
                return;
            }
            shownConnector = connector.value;
            updateAddLink();
            const request = ++latestRequest;
            const url = new URL(phoneNumber.dataset.optionsUrl, window.location.href);
            url.searchParams.set('connector', connector.value);
            const response = await fetch(url, {
                credentials: 'same-origin',
                headers: {Accept: 'application/json'},
            });
            // A slower answer for an earlier choice must not overwrite a later one.
            if (!response.ok || request !== latestRequest) {
                return;
            }
            const numbers = await response.json();
            if (request !== latestRequest) {
                return;
            }
            const selected = phoneNumber.value;
            for (const option of Array.from(phoneNumber.options)) {
                if (option.value) {
                    option.remove();
                }
            }
            for (const number of numbers) {
                const value = String(number.id);
                phoneNumber.add(new Option(number.label, value, false, value === selected));
            }
            if (phoneNumber.value !== selected) {
                // Lets the admin update the number's change/view links.
                phoneNumber.dispatchEvent(new Event('change', {bubbles: true}));
            }
        }

        // The admin's "+" popup announces a new connector with jQuery's
        // trigger('change'), which addEventListener does not hear; a handler
        // bound through django.jQuery hears both that and the user's choice.
        if (window.django && window.django.jQuery) {
            window.django.jQuery(connector).on('change', refresh);
        } else {
            connector.addEventListener('change', refresh);
        }
        updateAddLink();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}
